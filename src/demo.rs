//! `skidder demo`: the main job on an embedded configuration, no files, no outside service.
//!
//! Today: a generator (default 1,000,000 events of about 300 bytes) ships through the real
//! pipeline into `output.discard`, with the live view and a summary (events, events/s, CPU,
//! peak memory). When the Logstash output lands, this becomes: an in-process Lumberjack
//! receiver with freshly generated mutual-TLS certificates, and `output.logstash` shipping
//! to it over mTLS — only [`demo_config`] changes.

use std::process::ExitCode;

use clap::Args;

use crate::app::{self, RunOptions};
use crate::config::{Config, DiscardOutputConfig, GeneratorInputConfig, InputConfig, InputKind};
use crate::outputs::OutputKnobs;

/// `skidder demo` options.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Events to generate.
    #[arg(long, default_value_t = 1_000_000)]
    pub count: u64,
    /// Approximate event size in bytes.
    #[arg(long, default_value_t = 300)]
    pub size: usize,
    /// Generator threads.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
}

/// The embedded configuration of the demo.
pub fn demo_config(args: &DemoArgs) -> Config {
    let mut config = Config::default();
    let generator = GeneratorInputConfig {
        count: args.count,
        size: args.size,
        threads: args.threads.max(1),
        ..GeneratorInputConfig::default()
    };
    let input: InputConfig = InputConfig {
        common: crate::config::CommonInputConfig {
            id: Some("demo-generator".into()),
            ..Default::default()
        },
        kind: InputKind::Generator(generator),
    };
    config.skidder.inputs = vec![input];
    config.output.discard = Some(DiscardOutputConfig::default());
    config.logging.level = "warn".into();
    config.logging.to_stderr = true;
    config.logging.metrics.enabled = false;
    config
}

/// Runs the demo and prints its summary.
pub fn run(args: &DemoArgs) -> ExitCode {
    let config = demo_config(args);
    let plan = match app::plan(&config, OutputKnobs::default()) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("skidder demo: {e}");
            return ExitCode::from(crate::cli::EXIT_CONFIG);
        }
    };
    if let Err(e) = crate::telemetry::init_logging(&config.logging, &app::logs_dir(&config)) {
        eprintln!("skidder demo: {e}");
    }
    println!(
        "skidder demo: generator ({} events of ~{} bytes, {} thread(s)) -> memory queue -> output.discard",
        args.count, args.size, args.threads
    );
    println!("  (shipping over Lumberjack v2 with mutual TLS arrives with the Logstash output)");
    let opts = RunOptions {
        progress: true,
        signals: true,
    };
    match app::run(&config, plan, opts) {
        Ok(t) => {
            println!(
                "  events     {} acknowledged, {} unacknowledged",
                t.snapshot.acked, t.unacked
            );
            println!(
                "  rate       {:.0} events/s over {:.2} s",
                t.events_per_sec(),
                t.elapsed.as_secs_f64()
            );
            println!(
                "  cpu        {:.2} s user+sys ({:.3} s per million events)",
                t.usage.cpu().as_secs_f64(),
                t.cpu_per_million()
            );
            println!(
                "  peak rss   {:.1} MiB",
                t.usage.peak_rss_kib as f64 / 1024.0
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("skidder demo: {e}");
            ExitCode::from(crate::cli::EXIT_RUNTIME)
        }
    }
}
