//! A configuration file through the whole loader: parse, `${VAR}` expansion, overrides,
//! type checks and validation (`skidder::config::load_with`, as `skidder test config`).
//! Never panics; a refusal always names at least one problem.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use skidder::config::{load_with, ConfigError, EnvSource, LoadOptions};

/// One file per fuzzing process: the loader reads a path (it also finds `path.*` there).
fn file() -> &'static PathBuf {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("skidder-fuzz-{}.yml", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    // Not UTF-8 is one read error; the fuzzer's time goes to the YAML.
    if std::str::from_utf8(data).is_err() {
        return;
    }
    std::fs::write(file(), data).expect("the temp dir is writable");
    let opts = LoadOptions {
        path: file().clone(),
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    };
    match load_with(&opts) {
        Ok(_) => {}
        Err(ConfigError::Invalid(problems)) => {
            assert!(!problems.is_empty(), "a refusal without a problem");
        }
        Err(e) => panic!("a readable file refused as unreadable: {}", e.report()),
    }
});
