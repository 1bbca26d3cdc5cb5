//! Every invalid configuration gets a clear error naming the key and the file; none panics.
//!
//! `tests/fixtures/config/invalid/NAME.yml` is loaded and the error must contain every line
//! of `NAME.expected`. File-system failures are made at test time.

use std::path::{Path, PathBuf};

use skidder::config::{load_with, ConfigError, EnvSource, LoadOptions};

fn load(path: PathBuf) -> Result<skidder::config::Config, ConfigError> {
    load_with(&LoadOptions {
        path,
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_message() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config/invalid");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixture directory")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    cases.sort();
    assert!(
        cases.len() >= 20,
        "only {} fixtures in {}",
        cases.len(),
        dir.display()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let name = case
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let expected_path = case.with_extension("expected");
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
        let message = match load(case.clone()) {
            Ok(_) => {
                failures.push(format!("{name}: loaded without error"));
                continue;
            }
            Err(e) => e.to_string(),
        };
        // Shown with --nocapture, to review the messages a user would see.
        println!("--- {name}\n{message}");
        for fragment in expected.lines().filter(|l| !l.trim().is_empty()) {
            if !message.contains(fragment) {
                failures.push(format!("{name}: missing {fragment:?} in:\n{message}"));
            }
        }
        // Every problem line names the file.
        for line in message.lines().skip(1) {
            if !line.contains(&name) {
                failures.push(format!("{name}: a problem does not name the file: {line}"));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

fn read_error(result: Result<skidder::config::Config, ConfigError>) -> (PathBuf, std::io::Error) {
    match result {
        Err(ConfigError::Read { path, source }) => (path, source),
        Err(other) => panic!("expected a read error, got {other}"),
        Ok(_) => panic!("expected a read error, got a config"),
    }
}

#[test]
fn a_directory_is_not_a_config_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(dir.path().to_path_buf()).expect_err("a directory");
    let text = err.to_string();
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
    let (_, source) = read_error(Err(err));
    assert_eq!(source.kind(), std::io::ErrorKind::IsADirectory, "{source}");
}

#[test]
fn a_missing_file_is_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("absent.yml");
    let (p, source) = read_error(load(path.clone()));
    assert_eq!(p, path);
    assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
}

/// Fails for root too: no permission bit lets a path go through a regular file.
#[test]
fn a_path_through_a_file_is_unreadable_even_for_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("plain.yml");
    std::fs::write(&file, "output.discard: {}\n").expect("write");
    let path = file.join("skidder.yml");
    let (p, source) = read_error(load(path.clone()));
    assert_eq!(p, path);
    assert_eq!(source.kind(), std::io::ErrorKind::NotADirectory, "{source}");
}

#[test]
fn an_unreadable_file_is_named() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("secret.yml");
    std::fs::write(&path, "output.discard: {}\n").expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o000)).expect("chmod");
    if std::fs::read(&path).is_ok() {
        // Root reads anything (CI runs as root): the binary runs as `nobody` instead, for whom
        // mode 000 is unreadable, and must name the file and the reason.
        unreadable_as_nobody(dir.path(), &path);
        return;
    }
    let (p, source) = read_error(load(path.clone()));
    assert_eq!(p, path);
    assert_eq!(source.kind(), std::io::ErrorKind::PermissionDenied);
}

/// `skidder test config -c path` run as uid/gid 65534 (`nobody`) reports the unreadable
/// file by name with the OS reason, exit 1.
fn unreadable_as_nobody(dir: &std::path::Path, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    // tempdir() is 0700; nobody must reach the file to be refused by its own mode.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_skidder"))
        .args(["test", "config", "-c"])
        .arg(path)
        .current_dir(dir)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run skidder as nobody (the binary must be executable by other users)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&path.display().to_string()) && stderr.contains("Permission denied"),
        "the error names the file and the reason: {stderr}"
    );
}

#[test]
fn a_file_that_is_not_utf8_is_refused_with_its_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("binary.yml");
    std::fs::write(&path, b"output.discard: \xff\xfe\n").expect("write");
    let (p, source) = read_error(load(path.clone()));
    assert_eq!(p, path);
    assert_eq!(source.kind(), std::io::ErrorKind::InvalidData);
}

mod never_panics {
    use proptest::prelude::*;
    use skidder::config::{check::check_tree, tree, Config, ConfigKeys};

    fn run(text: &str) {
        if let Ok(node) = tree::parse(text) {
            let mut json = node.to_json();
            let _ = check_tree(&mut json, Config::fields());
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let text = format!("a: {}{}\n", "[".repeat(200), "]".repeat(200));
        let errs = tree::parse(&text).expect_err("too deep");
        assert!(errs[0].message.contains("nested more than 64"), "{errs:?}");
        // Far deeper, the YAML parser's own limit answers first.
        let text = format!("a: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let errs = tree::parse(&text).expect_err("too deep");
        assert!(errs[0].message.contains("recursion limit"), "{errs:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn arbitrary_text(text in "\\PC{0,200}") {
            run(&text);
        }

        #[test]
        fn yaml_like_text(lines in prop::collection::vec(
            "( |\t){0,4}(output|logstash|hosts|ssl|- |\\.|:|\\[|\\]|\\{|\\}|\"|'|\\$\\{|[a-z0-9]| ){0,12}",
            0..12,
        )) {
            run(&lines.join("\n"));
        }
    }
}

#[test]
fn read_errors_report_the_reason_through_the_source_chain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let err = load(dir.path().to_path_buf()).expect_err("a directory");
    assert!(err.is_read());
    let report = err.report();
    assert!(report.starts_with("cannot read config file "), "{report}");
    assert!(report.to_lowercase().contains("is a directory"), "{report}");
    let (text, code) = skidder::config::test_config(&LoadOptions {
        path: dir.path().to_path_buf(),
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    });
    assert_eq!(code, 1);
    assert_eq!(text, report);
}
