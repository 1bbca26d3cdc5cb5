//! Filebeat 7.17.29 as a peer (tests/peers/filebeat): built by `.ci/peers/filebeat.sh` on
//! first use, run with its home, data and config in a test's directory.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The Filebeat binary; the build script is a no-op while its sources are unchanged.
pub fn binary() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let out = Command::new("bash")
            .arg(repo().join(".ci/peers/filebeat.sh"))
            .output()
            .expect("run .ci/peers/filebeat.sh (needs bash and Go)");
        assert!(
            out.status.success(),
            "building the Filebeat peer failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        repo().join("tests/peers/filebeat/bin/filebeat")
    })
}

/// Beats' module source (`filebeat/filebeat.yml`, `filebeat/filebeat.reference.yml`, …),
/// present once [`binary`] has built.
pub fn beats_source() -> PathBuf {
    binary();
    let out = Command::new("go")
        .args(["env", "GOMODCACHE"])
        .output()
        .expect("go env GOMODCACHE");
    let cache = String::from_utf8_lossy(&out.stdout).trim().to_string();
    PathBuf::from(cache).join("github.com/elastic/beats/v7@v7.17.29")
}

/// `filebeat -e -c DIR/filebeat.yml` with `yaml` written there, and home and data in `dir`.
/// Its log goes to stderr; stdout carries `output.console` events (and one stray
/// go-sysinfo line on cgroup-v2 machines: read only lines that parse as JSON).
pub fn command(dir: &Path, yaml: &str) -> Command {
    let config = dir.join("filebeat.yml");
    std::fs::write(&config, yaml).unwrap();
    let mut cmd = Command::new(binary());
    cmd.arg("-e")
        .arg("-c")
        .arg(&config)
        .arg("--path.home")
        .arg(dir)
        .arg("--path.data")
        .arg(dir.join("filebeat-data"))
        .arg("--path.logs")
        .arg(dir.join("filebeat-logs"))
        .arg("--strict.perms=false");
    cmd
}
