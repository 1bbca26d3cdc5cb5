//! Secrets never leave the process (issue 13): a random canary, once from the keystore
//! and once from the environment, is placed in every setting that can hold a secret: a
//! host URL's password, `proxy_url`'s password, `headers`, `parameters`, `password`,
//! `api_key`, `ssl.key_passphrase`. Then every command runs: `run` at `logging.level:
//! debug` against a working and a failing destination (stderr and the log files),
//! `test config`, `test output`, `export config`, `setup roles` and every `apikey` command
//! (issue 18), and the error paths (credentials in a
//! host URL, a proxy URL that is not socks5, a wrong key passphrase, a keystore value as
//! an unusable `ssl.key`, a secret where a duration belongs, an unreachable host). Neither canary appears anywhere, nor its
//! percent-encoded form, nor its base64 form alone or inside a `Basic` or `ApiKey` value.

mod common;
#[path = "common/es_server.rs"]
mod es_server;
#[path = "common/lumberjack_peers.rs"]
mod peers;
#[path = "credentials_pki/mod.rs"]
mod pki;
#[path = "common/socks5.rs"]
mod socks5;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::Duration;

use base64::Engine as _;
use common::Run;

const LIMIT: Duration = Duration::from_secs(60);
/// The keystore entry and the environment variable holding the canaries.
const KS: &str = "KS_SECRET";
const ENV: &str = "ENV_SECRET";
/// The passphrase of the key no canary opens (for the wrong-passphrase error path).
const OTHER_PASSPHRASE: &str = "not-the-canary";

/// Two random, distinctive values; `^` and `|` are changed by URL encoding.
struct Canaries {
    ks: String,
    env: String,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 8];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Canaries {
    fn new() -> Self {
        Self {
            ks: format!("Ks^{}|q", random_hex()),
            env: format!("Ev^{}|q", random_hex()),
        }
    }

    /// Every form in which a canary must not be seen (compared case-insensitively, so
    /// `%5e` and `%5E` both count).
    fn forbidden(&self) -> Vec<(String, String)> {
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let mut out = Vec::new();
        for c in [&self.ks, &self.env] {
            let core = c[3..c.len() - 2].to_string();
            let pct = percent_encoding::utf8_percent_encode(c, percent_encoding::NON_ALPHANUMERIC)
                .to_string();
            for (what, form) in [
                ("the canary", c.clone()),
                ("the canary's random core", core),
                ("the canary URL-encoded", pct),
                ("the canary in base64", b64(c)),
                ("Basic elastic:canary", b64(&format!("elastic:{c}"))),
                ("ApiKey kid:canary", b64(&format!("kid:{c}"))),
                ("socks5 user:canary", b64(&format!("user:{c}"))),
            ] {
                out.push((what.to_string(), form));
            }
        }
        out
    }

    fn assert_absent(&self, what: &str, text: &str) {
        let lower = text.to_lowercase();
        for (form_name, form) in self.forbidden() {
            assert!(
                !lower.contains(&form.to_lowercase()),
                "{form_name} leaked in {what}:\n{text}"
            );
        }
    }
}

/// A test's directory, keystore, PKI and the canaries.
struct Setup {
    dir: tempfile::TempDir,
    data: String,
    c: Canaries,
    pki: pki::MutualTlsFiles,
    /// The client key encrypted with the keystore canary, the environment canary, and
    /// another passphrase.
    key_ks: String,
    key_env: String,
    key_other: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data").display().to_string();
        let c = Canaries::new();
        let ca = pki::Ca::new("secrets-test-ca");
        let client = ca.leaf("shipper", &["shipper"]);
        let server = ca.leaf("localhost", &["localhost", "127.0.0.1"]);
        let files = pki::Files::new();
        let pki = pki::MutualTlsFiles {
            ca: files.write("ca.crt", &ca.cert_pem),
            server_cert: files.write("server.crt", &server.cert_pem),
            server_key: files.write("server.key", &server.key_pem),
            client_cert: files.write("client.crt", &client.cert_pem),
            client_key: files.write("client.key", &client.key_pem),
            files,
        };
        let key_ks = pki.files.write("ks.key", &client.encrypted_key_pem(&c.ks));
        let key_env = pki
            .files
            .write("env.key", &client.encrypted_key_pem(&c.env));
        let key_other = pki
            .files
            .write("other.key", &client.encrypted_key_pem(OTHER_PASSPHRASE));
        let s = Self {
            dir,
            data,
            c,
            pki,
            key_ks,
            key_env,
            key_other,
        };
        let r = s.skidder(&["keystore", "create"], None);
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        let r = s.skidder(&["keystore", "add", KS, "--stdin"], Some(s.c.ks.as_bytes()));
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        s.c.assert_absent("keystore add", &format!("{}{}", r.stdout, r.stderr));
        s
    }

    fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = common::bin();
        cmd.current_dir(self.dir.path())
            .env(ENV, &self.c.env)
            .env_remove("SKIDDER_KEYSTORE_PASSPHRASE")
            .args(["--path.data", &self.data])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// Runs skidder to its end, stdin from `input` (or nothing).
    fn skidder(&self, args: &[&str], input: Option<&[u8]>) -> Run {
        let mut cmd = self.command(args);
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
        let mut child = cmd.spawn().unwrap();
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().unwrap();
            std::io::Write::write_all(&mut stdin, bytes).unwrap();
        }
        common::wait_output(child, LIMIT)
    }

    fn write_config(&self, name: &str, yaml: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, yaml).unwrap();
        path.display().to_string()
    }

    /// `test config`, `export config` and `test output` on `cfg`; every output checked.
    fn check_commands(&self, cfg: &str) -> [Run; 3] {
        let runs = [
            self.skidder(&["-c", cfg, "test", "config"], None),
            self.skidder(&["-c", cfg, "export", "config"], None),
            self.skidder(&["-c", cfg, "test", "output"], None),
        ];
        for (name, r) in ["test config", "export config", "test output"]
            .iter()
            .zip(&runs)
        {
            self.c.assert_absent(
                &format!("{name} of {cfg}"),
                &format!("{}\n{}", r.stdout, r.stderr),
            );
        }
        runs
    }

    /// The security commands (`setup roles`, `apikey ...`) on `cfg`: neither canary in
    /// any output, including `apikey create`'s one-time key and `verify` given a canary.
    fn check_security_commands(&self, cfg: &str) -> Vec<Run> {
        let verify_input = format!("kid:{}", self.c.env);
        let commands: [(&[&str], Option<&[u8]>); 9] = [
            (&["setup", "roles"], None),
            (&["setup", "roles", "--dry-run"], None),
            (&["setup", "roles", "--apply"], None),
            (&["apikey", "info"], None),
            (&["apikey", "info", "--json", "--valid-only"], None),
            (&["apikey", "invalidate", "--id", "kid"], None),
            (
                &["apikey", "verify", "--credentials", "-"],
                Some(verify_input.as_bytes()),
            ),
            (
                &["apikey", "create", "--name", "n", "--expiration", "1d"],
                None,
            ),
            (
                &[
                    "apikey",
                    "create",
                    "--name",
                    "n",
                    "--keystore-key",
                    "NEW_KEY",
                ],
                None,
            ),
        ];
        let mut runs = Vec::new();
        for (args, input) in commands {
            let mut all = vec!["-c", cfg];
            all.extend_from_slice(args);
            let r = self.skidder(&all, input);
            self.c.assert_absent(
                &format!("{} of {cfg}", args.join(" ")),
                &format!("{}\n{}", r.stdout, r.stderr),
            );
            runs.push(r);
        }
        runs
    }

    /// `run` to its end with `-e`: stderr holds the debug log.
    fn run_to_end(&self, cfg: &str) -> Run {
        let r = self.skidder(&["-e", "-c", cfg, "run"], None);
        self.c.assert_absent(
            &format!("run of {cfg}"),
            &format!("{}\n{}", r.stdout, r.stderr),
        );
        r
    }

    /// `run` logging to files under `logs` until a log line contains one of `needles`,
    /// then SIGTERM; stdout, stderr and every log file are checked. Returns the logs.
    fn run_until_logged(&self, cfg: &str, logs: &Path, needles: &[&str]) -> String {
        let logs_s = logs.display().to_string();
        let out_path = self.dir.path().join("run.out");
        let out = std::fs::File::create(&out_path).unwrap();
        let child = self
            .command(&["--path.logs", &logs_s, "-c", cfg, "run"])
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap();
        let mut child = common::reap::Reap(child);
        let seen = common::poll(LIMIT, || {
            let text = read_dir_text(logs);
            needles.iter().any(|n| text.contains(n)).then_some(())
        });
        if seen.is_none() {
            panic!(
                "no log line with any of {needles:?} within {LIMIT:?}:\n{}\n{}",
                read_dir_text(logs),
                std::fs::read_to_string(&out_path).unwrap_or_default()
            );
        }
        terminate(&child.0);
        common::wait_exit(&mut child.0, LIMIT);
        let text = read_dir_text(logs);
        let all = format!(
            "{}\n{text}",
            std::fs::read_to_string(&out_path).unwrap_or_default()
        );
        self.c.assert_absent(&format!("run of {cfg} (logs)"), &all);
        text
    }
}

fn terminate(child: &Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -TERM failed");
}

/// Every file under `dir`, concatenated.
fn read_dir_text(dir: &Path) -> String {
    let mut out = String::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for p in paths {
            if let Ok(bytes) = std::fs::read(&p) {
                out.push_str(&String::from_utf8_lossy(&bytes));
            }
        }
    }
    out
}

/// A port with nothing listening (bound, then released).
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

const GENERATOR: &str = "\
skidder.inputs:
  - type: generator
    count: 3
logging.level: debug
logging.metrics.period: 1s
queue.mem.flush.timeout: 10ms
";

/// `output.elasticsearch` at `host` with every secret-holding key set. `auth` chooses
/// which canary is the password and which the API key's key, in two configurations.
fn es_yaml(s: &Setup, host: &str, auth: &str, key: &str, passphrase: &str) -> String {
    format!(
        "{GENERATOR}output.elasticsearch:
  hosts: [\"{host}\"]
{auth}
  headers:
    X-Ks-Token: ${{{KS}}}
    X-Env-Token: ${{{ENV}}}
  parameters:
    ks: ${{{KS}}}
    env: ${{{ENV}}}
  max_retries: -1
  timeout: 5s
  backoff.init: 50ms
  backoff.max: 100ms
  ssl:
    certificate_authorities: [\"{ca}\"]
    certificate: \"{cert}\"
    key: \"{key}\"
    key_passphrase: \"{passphrase}\"
",
        ca = s.pki.ca,
        cert = s.pki.client_cert,
    )
}

fn logstash_yaml(s: &Setup, host: &str, proxy: &str, key: &str, passphrase: &str) -> String {
    format!(
        "{GENERATOR}output.logstash:
  hosts: [\"{host}\"]
  proxy_url: \"socks5://user:${{{KS}}}@{proxy}\"
  max_retries: -1
  timeout: 5s
  backoff.init: 50ms
  backoff.max: 100ms
  ssl:
    certificate_authorities: [\"{ca}\"]
    certificate: \"{cert}\"
    key: \"{key}\"
    key_passphrase: \"{passphrase}\"
",
        ca = s.pki.ca,
        cert = s.pki.client_cert,
    )
}

fn es_script(_: usize, seen: &es_server::Seen) -> (u16, String) {
    let path = seen.path_and_query.split('?').next().unwrap_or_default();
    match path {
        "/_bulk" => (200, es_server::all_indexed(seen)),
        "/" => (
            200,
            r#"{"name":"n","cluster_name":"fake","version":{"number":"8.15.0"}}"#.to_string(),
        ),
        "/_security/_authenticate" => (200, r#"{"username":"elastic"}"#.to_string()),
        "/_security/user/_has_privileges" => (
            200,
            r#"{"username":"elastic","has_all_requested":true}"#.to_string(),
        ),
        "/_security/api_key" => match seen.method.as_str() {
            "POST" | "PUT" => (
                200,
                r#"{"id":"newid","name":"n","api_key":"fresh-key","encoded":"bmV3aWQ6ZnJlc2gta2V5"}"#
                    .to_string(),
            ),
            "DELETE" => (
                200,
                r#"{"invalidated_api_keys":["kid"],"previously_invalidated_api_keys":[],"error_count":0}"#
                    .to_string(),
            ),
            _ => (
                200,
                r#"{"api_keys":[{"id":"kid","name":"n","creation":1,"invalidated":false,"username":"elastic"}]}"#
                    .to_string(),
            ),
        },
        p if p.starts_with("/_security/role/") => (200, r#"{"role":{"created":true}}"#.to_string()),
        _ => (404, "{}".to_string()),
    }
}

#[test]
fn elasticsearch_secrets_never_leave_the_process() {
    let s = Setup::new();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let server = rt.block_on(es_server::Server::start(es_script));
    let dead = format!("http://127.0.0.1:{}", dead_port());
    let configs = [
        // The keystore canary as password and key passphrase.
        (
            format!("  username: elastic\n  password: ${{{KS}}}"),
            s.key_ks.clone(),
            format!("${{{KS}}}"),
        ),
        // The environment canary in the API key and the key passphrase.
        (
            format!("  api_key: \"kid:${{{ENV}}}\""),
            s.key_env.clone(),
            format!("${{{ENV}}}"),
        ),
    ];
    for (i, (auth, key, passphrase)) in configs.iter().enumerate() {
        let good = s.write_config(
            &format!("es-ok-{i}.yml"),
            &es_yaml(&s, &server.host(), auth, key, passphrase),
        );
        let [check, export, probe] = s.check_commands(&good);
        for r in s.check_security_commands(&good) {
            assert_eq!(r.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
        }
        assert_eq!(check.code(), Some(0), "{}", check.stderr);
        assert!(
            export.stdout.contains("X-Ks-Token: REDACTED")
                && export.stdout.contains("ks: REDACTED")
                && export.stdout.contains("key_passphrase: REDACTED"),
            "{}",
            export.stdout
        );
        assert!(
            probe.stdout.contains("✓"),
            "{}\n{}",
            probe.stdout,
            probe.stderr
        );
        let before = server.seen().len();
        let r = s.run_to_end(&good);
        assert_eq!(r.code(), Some(0), "{}", r.stderr);
        assert_eq!(r.totals()["acked"], "3", "{}", r.stderr);
        // The secrets did reach the destination: they were used, only never printed.
        let bulk = server
            .seen()
            .into_iter()
            .skip(before)
            .find(|q| q.path_and_query.starts_with("/_bulk"))
            .expect("a bulk request");
        assert_eq!(bulk.headers["x-ks-token"], s.c.ks);
        assert_eq!(bulk.headers["x-env-token"], s.c.env);
        assert!(bulk.headers["authorization"].starts_with(if i == 0 {
            "Basic "
        } else {
            "ApiKey "
        }));

        let bad = s.write_config(
            &format!("es-dead-{i}.yml"),
            &es_yaml(&s, &dead, auth, key, passphrase),
        );
        let [_, _, probe] = s.check_commands(&bad);
        s.check_security_commands(&bad);
        assert_eq!(probe.code(), Some(1), "{}", probe.stdout);
        let logs = s.dir.path().join(format!("logs-es-{i}"));
        let text = s.run_until_logged(&bad, &logs, &["bulk request failed"]);
        assert!(text.contains("DEBUG"), "the run logged at debug:\n{text}");
    }
}

#[test]
fn logstash_secrets_never_leave_the_process() {
    let s = Setup::new();
    // `skidder receive` with mutual TLS: the Logstash of the working runs.
    let receiver = peers::Receiver::receive(&[
        "--out",
        "discard",
        "--tls-cert",
        &s.pki.server_cert,
        "--tls-key",
        &s.pki.server_key,
        "--tls-ca",
        &s.pki.ca,
        "--require-client-cert",
    ]);
    let proxy = socks5::Proxy::start(Some(("user", &s.c.ks)));
    let good = s.write_config(
        "ls-ok.yml",
        &logstash_yaml(
            &s,
            &receiver.addr,
            &proxy.addr.to_string(),
            &s.key_env,
            &format!("${{{ENV}}}"),
        ),
    );
    let [check, export, probe] = s.check_commands(&good);
    assert_eq!(check.code(), Some(0), "{}", check.stderr);
    assert!(
        export
            .stdout
            .contains(&format!("socks5://user:REDACTED@{}", proxy.addr))
            && export.stdout.contains("key_passphrase: REDACTED"),
        "{}",
        export.stdout
    );
    assert_eq!(probe.code(), Some(0), "{}\n{}", probe.stdout, probe.stderr);
    let r = s.run_to_end(&good);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(r.totals()["acked"], "3", "{}", r.stderr);
    assert!(
        !proxy.targets.lock().unwrap().is_empty(),
        "the run went through the authenticated proxy"
    );

    let dead_proxy = format!("127.0.0.1:{}", dead_port());
    let bad = s.write_config(
        "ls-dead.yml",
        &logstash_yaml(
            &s,
            &receiver.addr,
            &dead_proxy,
            &s.key_env,
            &format!("${{{ENV}}}"),
        ),
    );
    let [_, _, probe] = s.check_commands(&bad);
    assert_eq!(probe.code(), Some(1), "{}", probe.stdout);
    let logs = s.dir.path().join("logs-ls");
    let text = s.run_until_logged(
        &bad,
        &logs,
        &["cannot connect to logstash", "logstash connection failed"],
    );
    assert!(text.contains("SOCKS5 proxy"), "{text}");
}

#[test]
fn error_paths_never_quote_a_secret() {
    let s = Setup::new();
    let es = |hosts: &str, extra: &str| {
        format!("output.elasticsearch:\n  hosts: [\"{hosts}\"]\n{extra}")
    };
    let cases = [
        (
            "credentials in a host URL (keystore)",
            es(&format!("http://elastic:${{{KS}}}@127.0.0.1:9200"), ""),
            "credentials in a host URL",
        ),
        (
            "credentials in a host URL (environment)",
            es(&format!("https://elastic:${{{ENV}}}@127.0.0.1:9200/p"), ""),
            "credentials in a host URL",
        ),
        (
            "a proxy URL that is not socks5",
            format!(
                "output.logstash:\n  hosts: [\"127.0.0.1:5044\"]\n  proxy_url: \"http://user:${{{ENV}}}@127.0.0.1:1\"\n"
            ),
            "output.logstash.proxy_url",
        ),
        (
            "a keystore value where a duration belongs",
            format!("output.logstash:\n  hosts: [\"127.0.0.1:5044\"]\n  timeout: ${{{KS}}}\n"),
            "output.logstash.timeout",
        ),
        (
            "a keystore value that is not a usable ssl.key",
            format!(
                "output.logstash:\n  hosts: [\"127.0.0.1:5044\"]\n  ssl:\n    certificate: \"{}\"\n    key: ${{{KS}}}\n",
                s.pki.client_cert
            ),
            "ssl.key",
        ),
        (
            "a wrong key passphrase",
            format!(
                "output.logstash:\n  hosts: [\"127.0.0.1:5044\"]\n  ssl:\n    certificate: \"{}\"\n    key: \"{}\"\n    key_passphrase: ${{{KS}}}\n",
                s.pki.client_cert, s.key_other
            ),
            "ssl.key",
        ),
    ];
    for (i, (what, yaml, expected)) in cases.iter().enumerate() {
        let cfg = s.write_config(&format!("bad-{i}.yml"), yaml);
        let [check, export, probe] = s.check_commands(&cfg);
        assert_eq!(check.code(), Some(1), "{what}: {}", check.stderr);
        assert!(
            check.stderr.contains(expected),
            "{what}: expected {expected:?} in:\n{}",
            check.stderr
        );
        assert_ne!(export.code(), Some(2), "{what}");
        assert_ne!(probe.code(), Some(0), "{what}");
        let r = s.run_to_end(&cfg);
        assert_eq!(r.code(), Some(1), "{what}: {}", r.stderr);
    }
}

/// A keystore value in a setting that is not secret by itself (here the Logstash host name)
/// is still secret: the runtime log lines that name the host print it as REDACTED, on
/// stderr and in the log file.
#[test]
fn a_keystore_value_in_a_plain_setting_is_redacted_in_runtime_logs() {
    let s = Setup::new();
    let host = format!("canary-{}.invalid", random_hex());
    let r = s.skidder(
        &["keystore", "add", "LS_HOST", "--stdin"],
        Some(host.as_bytes()),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let cfg = s.write_config(
        "plain.yml",
        "skidder.inputs:\n  - type: generator\n    count: 10\n\
         output.logstash:\n  hosts: [\"${LS_HOST}:5044\"]\n  backoff.init: 10ms\n  backoff.max: 20ms\n\
         logging.level: debug\n",
    );
    let logs = s.dir.path().join("plain-logs");
    let text = s.run_until_logged(&cfg, &logs, &["cannot connect to logstash"]);
    assert!(!text.contains(&host), "the host name leaked:\n{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("cannot connect to logstash") && l.contains("REDACTED")),
        "the line names the host as REDACTED:\n{text}"
    );
}

/// An encrypted keystore opened with the wrong passphrase: the error names the keystore and
/// the problem, and neither passphrase (nor any stored value) appears in the output.
#[test]
fn a_wrong_keystore_passphrase_is_named_without_quoting_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data").display().to_string();
    let right = format!("Pp^{}|q", random_hex());
    let wrong = format!("Wr^{}|q", random_hex());
    let stored = Canaries::new();
    let skidder = |args: &[&str], passphrase: &str, input: Option<&[u8]>| {
        let mut cmd = common::bin();
        cmd.current_dir(dir.path())
            .env("SKIDDER_KEYSTORE_PASSPHRASE", passphrase)
            .args(["--path.data", &data])
            .args(args)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().unwrap();
            std::io::Write::write_all(&mut stdin, bytes).unwrap();
        }
        common::wait_output(child, LIMIT)
    };
    let r = skidder(&["keystore", "create"], &right, None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let r = skidder(
        &["keystore", "add", KS, "--stdin"],
        &right,
        Some(stored.ks.as_bytes()),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let cfg = dir.path().join("k.yml");
    std::fs::write(
        &cfg,
        format!("skidder.inputs:\n  - type: stdin\noutput.elasticsearch:\n  hosts: [\"localhost:9200\"]\n  password: ${{{KS}}}\n  username: u\n"),
    )
    .unwrap();
    let cfg = cfg.display().to_string();
    for args in [
        &["-c", cfg.as_str(), "test", "config"][..],
        &["-c", cfg.as_str(), "export", "config"],
        &["keystore", "list"],
    ] {
        let r = skidder(args, &wrong, None);
        assert_eq!(r.code(), Some(1), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("skidder.keystore"),
            "{args:?}: the error names the keystore: {}",
            r.stderr
        );
        let all = format!("{}\n{}", r.stdout, r.stderr);
        for secret in [&right, &wrong] {
            assert!(
                !all.contains(secret.as_str()),
                "{args:?} quoted a passphrase:\n{all}"
            );
        }
        stored.assert_absent(&format!("{args:?} with a wrong passphrase"), &all);
    }
}
