//! `ferro-peer --addr HOST:PORT --compression 3 --file NDJSON --count N [--batch 2048]`:
//! sends the file's lines (cycled, bytes unchanged) with ferro-lumberjack's client, one
//! window at a time (the only mode it has), and prints one JSON line with the counts.
//! CPU and memory are measured from outside by the harness.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Parser;
use ferro_lumberjack::client::ClientBuilder;

#[derive(Debug, Parser)]
struct Args {
    /// Server address.
    #[arg(long)]
    addr: String,
    /// zlib level; 0 = plain J frames.
    #[arg(long, default_value_t = 3)]
    compression: u32,
    /// NDJSON file whose lines are the events.
    #[arg(long)]
    file: std::path::PathBuf,
    /// Events to send.
    #[arg(long)]
    count: u64,
    /// Events per window.
    #[arg(long, default_value_t = 2048)]
    batch: usize,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let text =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let lines: Vec<&[u8]> = text
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if lines.is_empty() {
        bail!("{} has no lines", args.file.display());
    }
    let started = Instant::now();
    let mut client = ClientBuilder::new()
        .add_host(args.addr.clone())
        .compression_level(args.compression)
        .timeout(Duration::from_secs(30))
        .connect()
        .await
        .with_context(|| format!("connecting to {}", args.addr))?;
    let (mut sent, mut acked, mut windows) = (0u64, 0u64, 0u64);
    let mut next = 0usize;
    while sent < args.count {
        let n = (args.count - sent).min(args.batch as u64) as usize;
        // The client takes owned Vec<u8> events; this copy is part of using it.
        let events: Vec<Vec<u8>> = (0..n)
            .map(|i| lines[(next + i) % lines.len()].to_vec())
            .collect();
        next = (next + n) % lines.len();
        sent += n as u64;
        let got = client
            .send_json(events)
            .await
            .with_context(|| format!("window {} after {acked} acked events", windows + 1))?;
        acked += u64::from(got);
        windows += 1;
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{}",
        serde_json::json!({
            "sent": sent, "acked": acked, "windows": windows, "elapsed_s": elapsed,
            "events_per_s": acked as f64 / elapsed.max(1e-9),
        })
    );
    if acked != sent {
        bail!("only {acked} of {sent} events were acknowledged");
    }
    Ok(())
}
