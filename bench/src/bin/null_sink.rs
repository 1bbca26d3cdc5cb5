//! `null-sink`: the harness's null Lumberjack receiver (see `skidder_bench::null_sink`).
//!
//! ```text
//! null-sink --listen 127.0.0.1:0 [--listen 127.0.0.1:0 ...] [--tls-cert F --tls-key F
//!           [--tls-ca F]] --expect N [--deadline SECS] [--stats-file PATH]
//! ```
//!
//! Prints `READY <addr> [<addr> ...]` on stdout once every listener is bound, serves each
//! connection on a thread of its own, and exits 0 once `--expect` events were ACKed (all
//! listeners together), after writing go-lumber-style JSON stats; 1 at the deadline.

use std::io::Write as _;
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use skidder::config::{ClientAuthentication, SslConfig};
use skidder::credentials::{Secret, TlsSettings};
use skidder_bench::null_sink::{serve, Stats};

#[derive(Debug, Parser)]
#[command(
    name = "null-sink",
    about = "A Lumberjack v2 receiver that skips payloads and ACKs windows"
)]
struct Args {
    /// Address to listen on; repeat for several listeners (`:0` picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: Vec<String>,
    /// Server certificate (PEM); with --tls-key, TLS is on.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// Server key (PEM).
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA of client certificates; when given, a client certificate is required (mTLS).
    #[arg(long, requires = "tls_cert")]
    tls_ca: Option<PathBuf>,
    /// Exit 0 once this many events were ACKed.
    #[arg(long)]
    expect: u64,
    /// Give up (exit 1) after this many seconds.
    #[arg(long, default_value_t = 600)]
    deadline: u64,
    /// Where to write the JSON stats at exit.
    #[arg(long)]
    stats_file: Option<PathBuf>,
}

fn tls_config(args: &Args) -> anyhow::Result<Option<Arc<ServerConfig>>> {
    let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) else {
        return Ok(None);
    };
    // skidder's own credential layer, as `skidder receive` builds it.
    let ssl = SslConfig {
        enabled: Some(true),
        certificate: Some(cert.display().to_string()),
        key: Some(Secret::new(key.display().to_string())),
        certificate_authorities: args
            .tls_ca
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        client_authentication: Some(if args.tls_ca.is_some() {
            ClientAuthentication::Required
        } else {
            ClientAuthentication::None
        }),
        ..SslConfig::default()
    };
    let settings = TlsSettings::from_config(&ssl).context("TLS settings")?;
    Ok(Some(settings.server_config().context("TLS material")?))
}

fn connection(tcp: TcpStream, tls: Option<Arc<ServerConfig>>, stats: Arc<Stats>) {
    let peer = tcp
        .peer_addr()
        .map_or_else(|_| "?".to_string(), |a| a.to_string());
    // ACKs are small and awaited by the sender's pipeline: do not let Nagle hold them.
    let _ = tcp.set_nodelay(true);
    let result = match tls {
        None => serve(tcp, &stats),
        Some(config) => match ServerConnection::new(config) {
            Ok(conn) => serve(StreamOwned::new(conn, tcp), &stats),
            Err(e) => {
                eprintln!("null-sink: {peer}: TLS setup failed: {e}");
                return;
            }
        },
    };
    if let Err(e) = result {
        eprintln!("null-sink: {peer}: connection ended: {e}");
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let tls = tls_config(&args)?;
    let stats = Arc::new(Stats::new(args.expect));
    let mut addrs = Vec::new();
    for listen in &args.listen {
        let listener =
            TcpListener::bind(listen).with_context(|| format!("listening on {listen}"))?;
        addrs.push(listener.local_addr()?.to_string());
        let (tls, stats) = (tls.clone(), Arc::clone(&stats));
        std::thread::spawn(move || {
            for tcp in listener.incoming().flatten() {
                let (tls, stats) = (tls.clone(), Arc::clone(&stats));
                std::thread::spawn(move || connection(tcp, tls, stats));
            }
        });
    }
    println!("READY {}", addrs.join(" "));
    std::io::stdout().flush()?;
    let reached = stats.wait_expected(Duration::from_secs(args.deadline));
    let json = stats.json();
    if let Some(path) = &args.stats_file {
        std::fs::write(path, json.to_string())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    eprintln!("null-sink: {json}");
    if !reached {
        anyhow::bail!(
            "{} of {} events ACKed within {} s",
            json["events"],
            args.expect,
            args.deadline
        );
    }
    Ok(())
}
