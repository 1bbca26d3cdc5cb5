//! `logging.files.*` through the real binary: a run that logs more than `rotateeverybytes`
//! keeps the active file and `keepfiles` rotated ones, each with `permissions`; the next
//! start rotates the old file away (`rotateonstartup`); `to_files: false` writes no file.

mod common;

use std::os::unix::fs::PermissionsExt as _;

fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

/// Each selector that names nothing skidder logs is one WARN line of about 250 bytes at
/// start: a deterministic way to log several KiB.
fn config() -> String {
    let selectors: Vec<String> = (0..40).map(|i| format!("no-such-part-{i}")).collect();
    format!("{CONFIG}logging.selectors: [{}]\n", selectors.join(", "))
}

const CONFIG: &str = "skidder.inputs:
  - type: generator
    count: 2000
output.discard: {}
logging.level: debug
logging.files:
  path: logs
  name: shipper.log
  rotateeverybytes: 2KiB
  keepfiles: 3
  permissions: 0640
";

#[test]
fn a_run_past_rotateeverybytes_keeps_keepfiles_files_with_permissions() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(dir.path(), &config());
    let run = common::run(dir.path(), &["-c", config.to_str().unwrap()], b"");
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let logs = dir.path().join("logs");
    let names = files(&logs);
    assert_eq!(
        names,
        [
            "shipper.log",
            "shipper.log.1",
            "shipper.log.2",
            "shipper.log.3"
        ],
        "the active file and keepfiles rotated ones"
    );
    let mut total = 0;
    for n in &names {
        let meta = std::fs::metadata(logs.join(n)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640, "{n}");
        assert!(
            meta.len() <= 2048,
            "{n} is {} bytes, past rotateeverybytes",
            meta.len()
        );
        total += meta.len();
    }
    assert!(
        total > 3 * 1024,
        "too little was logged to prove rotation: {total} bytes"
    );
    // The newest rotated file ends where the active one starts: lines are whole.
    let active = std::fs::read_to_string(logs.join("shipper.log")).unwrap();
    assert!(active.contains("skidder stopped"), "{active}");
    assert!(
        active.lines().all(|l| l.contains("skidder")),
        "a split line:\n{active}"
    );

    // rotateonstartup (default true): the next run starts a fresh file.
    let before = active.clone();
    let run = common::run(
        dir.path(),
        &["-c", config.to_str().unwrap(), "-E", "logging.selectors=[]"],
        b"",
    );
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    let rotated = std::fs::read_to_string(logs.join("shipper.log.1")).unwrap();
    assert_eq!(
        rotated, before,
        "the previous run's file became shipper.log.1"
    );
    assert_eq!(files(&logs).len(), 4, "still keepfiles + 1");
}

#[test]
fn to_files_false_writes_no_log_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = common::config(
        dir.path(),
        "skidder.inputs: [{type: generator, count: 10}]\noutput.discard: {}\nlogging.to_files: false\nlogging.files.path: logs\n",
    );
    let run = common::run(dir.path(), &["-c", config.to_str().unwrap()], b"");
    assert_eq!(run.code(), Some(0), "{}", run.stderr);
    assert!(!dir.path().join("logs").exists(), "{:?}", files(dir.path()));
    assert!(run.stderr.contains("skidder totals:"), "{}", run.stderr);
}
