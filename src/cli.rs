//! The command line: `skidder [run]`, `skidder test config|output`, `skidder export config`,
//! `skidder keystore create|add|list|remove`, `skidder setup roles`,
//! `skidder apikey create|info|invalidate|verify`, `skidder version`, `skidder demo`,
//! `skidder receive`.
//!
//! Exit codes: 0 success; 1 configuration error (bad or missing file, bad key, unusable
//! `path.data`), or for `test output` a host that failed; 2 usage error (unknown flag or
//! command); 3 runtime failure (the output failed); 4 finished, but events were dropped by
//! a policy the configuration allows; 130 interrupted with events left unacknowledged, or a
//! second signal.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::app::{self, AppError, RunOptions};
use crate::config::{self, Config, EnvSource, LoadOptions, Paths};
use crate::credentials::keystore::{self, Keystore, KeystoreCommand};
use crate::credentials::secret::Redactor;
use crate::inputs::InputPlan;
use crate::outputs::elasticsearch::security::{self, ApikeyCommand, SetupCommand};
use crate::outputs::OutputKnobs;
use crate::telemetry;

/// What to do when the configuration file does not exist.
const NO_CONFIG_HINT: &str = "point at your configuration with -c FILE \
(e.g. skidder -c /etc/skidder/skidder.yml test config; the default is skidder.yml in the \
working directory), or try skidder without one: skidder demo";

/// Exit code: a configuration error.
pub const EXIT_CONFIG: u8 = 1;
/// Exit code: a usage error (unknown flag or command, a flag the command does not take);
/// clap exits with it too.
pub const EXIT_USAGE: u8 = 2;
/// Exit code: the output failed while running.
pub const EXIT_RUNTIME: u8 = 3;
/// Exit code: the run finished, but events were dropped by a policy the configuration
/// allows (`max_retries` ≥ 0, `non_indexable_policy: drop`, `on_json_error: drop`).
pub const EXIT_DROPPED: u8 = 4;
/// Exit code: interrupted with unacknowledged events (or a second signal).
pub const EXIT_INTERRUPTED: u8 = 130;

/// The help heading of the options every command takes that reads the configuration; a
/// subcommand's own flags are listed first, under "Options".
const GLOBAL: &str = "Configuration options (run, test, export, keystore)";

/// The configuration file when `-c` is not given, as Beats' `filebeat.yml`.
pub const DEFAULT_CONFIG: &str = "skidder.yml";

/// skidder ships events: inputs → memory queue → one output.
#[derive(Debug, Parser)]
#[command(name = "skidder", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file [default: skidder.yml]; repeat it to layer files in order (Beats'
    /// merge: later files win, lists merge by index).
    #[arg(short = 'c', long = "config", global = true, help_heading = GLOBAL)]
    pub config: Vec<PathBuf>,
    /// Override a setting, e.g. `-E queue.mem.events=4096` (repeatable).
    #[arg(short = 'E', value_name = "KEY=VALUE", global = true, help_heading = GLOBAL)]
    pub overrides: Vec<String>,
    /// Data directory (overrides `path.data`).
    #[arg(long = "path.data", value_name = "DIR", global = true, help_heading = GLOBAL)]
    pub path_data: Option<PathBuf>,
    /// Log directory (overrides `path.logs`).
    #[arg(long = "path.logs", value_name = "DIR", global = true, help_heading = GLOBAL)]
    pub path_logs: Option<PathBuf>,
    /// Log to standard error instead of `path.logs`.
    #[arg(short = 'e', global = true, help_heading = GLOBAL)]
    pub log_to_stderr: bool,
    /// Test/benchmark aid: `output.discard` waits this long per batch, e.g. `5ms`.
    #[arg(long = "discard-delay", hide = true, global = true, value_parser = parse_duration)]
    pub discard_delay: Option<Duration>,
    /// Read every file of the filestream inputs to its end, ship, wait for every
    /// acknowledgement, record the offsets and exit (Filebeat's `-once`).
    #[arg(long = "once", global = true, help_heading = GLOBAL)]
    pub once: bool,
    /// What to do; `run` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the configured inputs and output (the default).
    Run,
    /// Check things without running.
    Test {
        /// What to check.
        #[command(subcommand)]
        what: TestCommand,
    },
    /// Print things without running.
    Export {
        /// What to print.
        #[command(subcommand)]
        what: ExportCommand,
    },
    /// Manage the secrets keystore (`<path.data>/skidder.keystore`); `${NAME}` in the
    /// configuration is looked up there before the environment. Encrypted when
    /// `SKIDDER_KEYSTORE_PASSPHRASE` is set.
    Keystore {
        /// The keystore action.
        #[command(subcommand)]
        action: KeystoreAction,
    },
    /// Elasticsearch feature roles: `setup roles [--dry-run|--apply]`.
    Setup {
        /// What to set up.
        #[command(subcommand)]
        what: SetupCommand,
    },
    /// Elasticsearch API keys: `create`, `info`, `invalidate`, `verify`, over the
    /// configured output.elasticsearch connection.
    Apikey {
        /// The action.
        #[command(subcommand)]
        action: ApikeyCommand,
    },
    /// Print the version.
    Version,
    /// Ship generated load in-process with an embedded configuration and print a summary.
    Demo(crate::demo::DemoArgs),
    /// A stand-in Logstash: accept Lumberjack (Beats) connections and write the events to
    /// stdout, a file or nowhere; no configuration file is read.
    Receive(crate::receive::ReceiveArgs),
}

/// `skidder test ...`.
#[derive(Debug, Subcommand)]
pub enum TestCommand {
    /// Load and validate the configuration, print "Config OK".
    Config,
    /// Connect once to every host of output.logstash / output.elasticsearch and report each
    /// phase (resolve, TCP, TLS, and for Elasticsearch the credentials and write
    /// permission); exit 0 when every host passed, 1 otherwise.
    Output,
}

/// `skidder export ...`.
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Print the effective merged configuration as YAML, secrets shown as `REDACTED`.
    Config,
}

/// `skidder keystore ...`.
#[derive(Debug, Subcommand)]
pub enum KeystoreAction {
    /// Create an empty keystore.
    Create {
        /// Replace an existing keystore.
        #[arg(long)]
        force: bool,
    },
    /// Add a secret; the value is prompted for without echo, or read from stdin.
    Add {
        /// The secret's name, as used in `${NAME}`.
        name: String,
        /// Replace an existing secret of that name.
        #[arg(long)]
        force: bool,
        /// Read the value from standard input.
        #[arg(long)]
        stdin: bool,
    },
    /// List the secrets' names (never their values).
    List,
    /// Remove secrets.
    Remove {
        /// The names to remove.
        #[arg(required = true)]
        names: Vec<String>,
    },
}

impl From<&KeystoreAction> for KeystoreCommand {
    fn from(action: &KeystoreAction) -> Self {
        match action {
            KeystoreAction::Create { force } => Self::Create { force: *force },
            KeystoreAction::Add { name, force, stdin } => Self::Add {
                name: name.clone(),
                force: *force,
                stdin: *stdin,
            },
            KeystoreAction::List => Self::List,
            KeystoreAction::Remove { names } => Self::Remove {
                names: names.clone(),
            },
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    s.parse::<config::Duration>()
        .map(config::Duration::get)
        .map_err(|e| e.to_string())
}

/// Parses the command line and runs it; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let knobs = OutputKnobs {
        discard_delay: cli.discard_delay,
    };
    match cli.command {
        Some(Command::Version) => {
            println!("skidder {}", env!("CARGO_PKG_VERSION"));
            ExitCode::SUCCESS
        }
        Some(Command::Demo(ref args)) => match refuse_config_flags(&cli, "demo") {
            Some(code) => code,
            None => crate::demo::run(args),
        },
        Some(Command::Receive(ref args)) => match refuse_config_flags(&cli, "receive") {
            Some(code) => code,
            None => crate::receive::run(args, knobs),
        },
        Some(Command::Test {
            what: TestCommand::Config,
        }) => match load(&cli) {
            Ok(c) => match app::plan(&c, knobs) {
                Ok(_) => {
                    // What loads but is not applied as written, one line each (a run
                    // logs the same at WARN).
                    for notice in app::ignored_notices(&c) {
                        eprintln!("WARN {}", c.secrets.redact(&notice.to_string()));
                    }
                    println!("{}", config::CONFIG_OK);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(&e, &c.secrets),
            },
            Err(e) => fail(&e, &Redactor::default()),
        },
        Some(Command::Test {
            what: TestCommand::Output,
        }) => match load(&cli) {
            Ok(c) => test_output(&c),
            Err(e) => fail(&e, &Redactor::default()),
        },
        Some(Command::Export {
            what: ExportCommand::Config,
        }) => match load(&cli) {
            Ok(c) => {
                print!("{}", config::export_yaml(&c));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, &Redactor::default()),
        },
        Some(Command::Keystore { ref action }) => {
            let result = keystore::run_keystore_command(
                &keystore_dir(&cli),
                &KeystoreCommand::from(action),
                keystore::passphrase_from_env(),
                &mut std::io::stdin().lock(),
                &mut std::io::stdout().lock(),
            );
            match result {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("skidder: {e}");
                    ExitCode::from(EXIT_CONFIG)
                }
            }
        }
        Some(Command::Setup {
            what: SetupCommand::Roles(ref args),
        }) => match load(&cli) {
            Ok(c) => print_result(
                &c,
                security::setup_roles(c.output.elasticsearch.as_ref(), args),
            ),
            Err(e) => fail(&e, &Redactor::default()),
        },
        Some(Command::Apikey { ref action }) => match load(&cli) {
            Ok(c) => {
                let result =
                    security::apikey(c.output.elasticsearch.as_ref(), action, &keystore_dir(&cli));
                print_result(&c, result)
            }
            Err(e) => fail(&e, &Redactor::default()),
        },
        None | Some(Command::Run) => run(&cli, knobs),
    }
}

/// Prints a security command's text, or its error (exit 1); keystore values the
/// configuration used are redacted from both. A key `apikey create` prints is new, so
/// never among them.
fn print_result(config: &Config, result: Result<String, security::SecurityError>) -> ExitCode {
    match result {
        Ok(text) => {
            print!("{}", config.secrets.redact(&text));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("skidder: {}", config.secrets.redact(&e.to_string()));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// `demo` and `receive` read no configuration: a configuration flag given to them would be
/// silently ignored, so it is a usage error (exit 2) naming the flag.
fn refuse_config_flags(cli: &Cli, command: &str) -> Option<ExitCode> {
    let given: Vec<&str> = [
        (!cli.config.is_empty(), "-c/--config"),
        (!cli.overrides.is_empty(), "-E"),
        (cli.path_data.is_some(), "--path.data"),
        (cli.path_logs.is_some(), "--path.logs"),
        (cli.log_to_stderr, "-e"),
    ]
    .into_iter()
    .filter_map(|(set, flag)| set.then_some(flag))
    .collect();
    if given.is_empty() {
        return None;
    }
    eprintln!(
        "skidder {command}: {} not used: `skidder {command}` reads no configuration file and \
         logs to stderr; its own flags are listed by `skidder {command} --help`",
        given.join(", ")
    );
    Some(ExitCode::from(EXIT_USAGE))
}

/// The load options of the command line, without the keystore.
fn load_options(cli: &Cli) -> LoadOptions<'static> {
    LoadOptions {
        path: cli
            .config
            .first()
            .cloned()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG)),
        layers: cli.config.iter().skip(1).cloned().collect(),
        overrides: cli.overrides.clone(),
        env: EnvSource::Process,
        resolver: None,
        path_data: cli.path_data.clone(),
        path_logs: cli.path_logs.clone(),
    }
}

/// Where the keystore lives: `path.data` from `--path.data`, `-E path.data=`,
/// `SKIDDER_PATH__DATA` or the configuration file (when there is one), else `data` under
/// `path.home`. As Beats, it is found before the rest of the configuration is read.
fn keystore_dir(cli: &Cli) -> PathBuf {
    Paths::early(&load_options(cli)).data
}

fn load(cli: &Cli) -> Result<Config, AppError> {
    let mut opts = load_options(cli);
    let store_path = Paths::early(&opts).keystore();
    let store = if store_path.exists() {
        Some(
            Keystore::open_with(&store_path, keystore::passphrase_from_env())
                .map_err(AppError::Keystore)?,
        )
    } else {
        None
    };
    opts.resolver = store.as_ref().map(|s| s as &dyn config::SecretResolver);
    let mut config = config::load_with(&opts)?;
    if cli.log_to_stderr {
        config.logging.to_stderr = true;
    }
    Ok(config)
}

/// `skidder test output`: the report on stdout; 1 when a host failed or the outputs'
/// settings cannot be used.
fn test_output(config: &Config) -> ExitCode {
    match crate::outputs::probe::run(&config.output) {
        Ok(report) => {
            print!("{}", config.secrets.redact(&report.to_string()));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_CONFIG)
            }
        }
        Err(e) => {
            eprintln!("skidder: {}", config.secrets.redact(&e.to_string()));
            ExitCode::from(EXIT_CONFIG)
        }
    }
}

/// Prints `e`, any keystore value it quotes redacted (a setting's error may quote the
/// value it refuses).
fn fail(e: &AppError, secrets: &Redactor) -> ExitCode {
    let text = match e {
        AppError::Config(c) => c.report(),
        other => other.to_string(),
    };
    eprintln!("skidder: {}", secrets.redact(&text));
    if let AppError::Config(config::ConfigError::Read { source, .. }) = e {
        if source.kind() == std::io::ErrorKind::NotFound {
            // The first thing a new user sees: say what to do, not only what failed.
            eprintln!("skidder: {NO_CONFIG_HINT}");
        }
    }
    if e.is_config_error() {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::from(EXIT_RUNTIME)
    }
}

fn run(cli: &Cli, knobs: OutputKnobs) -> ExitCode {
    let config = match load(cli) {
        Ok(c) => c,
        Err(e) => return fail(&e, &Redactor::default()),
    };
    let prepared = app::plan(&config, knobs).and_then(|plan| {
        app::check_data_dir(&app::data_dir(&config))?;
        plan.global.agent.persist(&app::data_dir(&config))?;
        telemetry::init_logging(&config.logging, &app::logs_dir(&config), &config.secrets)?;
        Ok(plan)
    });
    let mut plan = match prepared {
        Ok(p) => p,
        Err(e) => return fail(&e, &config.secrets),
    };
    for (_, input) in &mut plan.inputs {
        if let InputPlan::Filestream(f) = input {
            f.set_once(cli.once);
        }
    }
    let opts = RunOptions {
        progress: true,
        signals: true,
    };
    match app::run(&config, plan, opts) {
        Ok(totals) => {
            eprintln!("{}", totals.line());
            if totals.interrupted && totals.unacked > 0 {
                ExitCode::from(EXIT_INTERRUPTED)
            } else if totals.dropped_by_policy() > 0 {
                ExitCode::from(EXIT_DROPPED)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => fail(&e, &config.secrets),
    }
}
