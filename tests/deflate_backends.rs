//! output.logstash's deflate backends (ISA-L igzip, libdeflate, flate2; src/outputs/logstash/
//! compress.rs) on the wire: whichever one `SKIDDER_DEFLATE_BACKEND` forces, at the fastest,
//! the default and the smallest `compression_level`, Elastic's go-lumber server (Go's zlib
//! reader, as libbeat's peers) inflates every C frame and receives every event once; an
//! unknown or missing backend stops the run before anything is sent.

mod common;
#[path = "common/golumber.rs"]
mod golumber;

use std::process::Stdio;
use std::time::Duration;

use golumber::{assert_all_delivered, Server};

fn config(host: &str, level: u32, count: u64) -> String {
    format!(
        "skidder.inputs:\n  - type: generator\n    count: {count}\n    size: 400\n\
         queue.mem:\n  events: 4096\n  flush:\n    min_events: 512\n    timeout: 20ms\n\
         output.logstash:\n  hosts: [\"{host}\"]\n  timeout: 5s\n  bulk_max_size: 1024\n  max_retries: -1\n\
         \x20 compression_level: {level}\n"
    )
}

/// `skidder run` with `SKIDDER_DEFLATE_BACKEND=backend`, to its end.
fn run_with(backend: &str, yaml: &str) -> common::Run {
    let dir = tempfile::tempdir().unwrap();
    let path = common::config(dir.path(), yaml);
    let child = common::bin()
        .current_dir(dir.path())
        .args(["run", "-e", "-c"])
        .arg(&path)
        .env("SKIDDER_DEFLATE_BACKEND", backend)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    common::wait_output(child, Duration::from_secs(60))
}

#[test]
fn go_lumber_inflates_every_backend_at_every_kind_of_level() {
    let mut backends = vec!["flate2"];
    if cfg!(feature = "isal") {
        backends.push("isal");
    }
    if cfg!(feature = "libdeflate") {
        backends.push("libdeflate");
    }
    for backend in &backends {
        for level in [1u32, 3, 9] {
            let server = Server::start(&[]);
            let n = 4000;
            let r = run_with(backend, &config(&server.addr, level, n));
            assert_eq!(
                r.code(),
                Some(0),
                "{backend} level {level} failed:\n{}",
                r.stderr
            );
            // The log names the compressor the connection used: the forced backend.
            assert!(
                r.stderr.contains(&format!(
                    "output.logstash compresses windows with {backend} level"
                )),
                "{backend} level {level}: no line naming the backend:\n{}",
                r.stderr
            );
            assert_eq!(
                r.totals()["acked"],
                n.to_string(),
                "{backend} level {level}"
            );
            assert_eq!(
                assert_all_delivered(&server.seqs(), n),
                0,
                "{backend} level {level}: duplicates"
            );
            let stats = server.stop();
            assert_eq!(stats["duplicates"], 0, "{backend} level {level}");
        }
    }
}

#[test]
fn an_unknown_backend_stops_the_run_with_a_clear_error() {
    let server = Server::start(&[]);
    let r = run_with("zopfli", &config(&server.addr, 3, 100));
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "SKIDDER_DEFLATE_BACKEND=\"zopfli\" is not a deflate backend: use isal, libdeflate or flate2"
        ),
        "{}",
        r.stderr
    );
    assert!(server.seqs().is_empty(), "nothing may be sent");
}
