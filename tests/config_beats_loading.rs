//! Beats' loading rules through the binary: several `-c` files layered in order (lists
//! merged element by element, as go-ucfg), a problem in a later file named with that file's
//! line, and top-level `max_procs` sizing the runtime.

mod common;

use std::process::Stdio;
use std::time::Duration;

#[test]
fn several_config_files_are_layered_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join("base.yml"),
        "skidder.inputs: [{type: stdin}]\noutput.logstash:\n  hosts: [\"a:5044\", \"b:5044\"]\n  worker: 2\n",
    )
    .unwrap();
    std::fs::write(
        d.join("site.yml"),
        "output.logstash:\n  hosts: [\"c:5044\"]\n  timeout: 7s\n",
    )
    .unwrap();
    let out = common::bin()
        .args(["-c", "base.yml", "-c", "site.yml", "export", "config"])
        .current_dir(d)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    let ls = &yaml["output"]["logstash"];
    // Index 0 replaced by the later file, index 1 kept: Beats' merge, not an append.
    assert_eq!(
        ls["hosts"],
        serde_yaml::from_str::<serde_yaml::Value>("[c:5044, b:5044]").unwrap()
    );
    assert_eq!(ls["worker"].as_u64(), Some(2), "kept from base.yml");
    assert_eq!(ls["timeout"].as_str(), Some("7s"), "added by site.yml");

    std::fs::write(
        d.join("bad.yml"),
        "# site overrides\noutput.logstash.wroker: 3\n",
    )
    .unwrap();
    let out = common::bin()
        .args(["-c", "base.yml", "-c", "bad.yml", "test", "config"])
        .current_dir(d)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.yml:2:1: output.logstash.wroker: unknown key; did you mean output.logstash.worker?"),
        "{err}"
    );
}

/// Threads named `skidder-rt` of process `pid`.
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|tasks| {
            tasks
                .filter_map(Result::ok)
                .filter(|t| {
                    std::fs::read_to_string(t.path().join("comm"))
                        .is_ok_and(|c| c.trim() == "skidder-rt")
                })
                .count()
        })
        .unwrap_or(0)
}

#[test]
fn max_procs_sets_the_runtime_threads() {
    let dir = tempfile::tempdir().unwrap();
    for (max_procs, want) in [("5", 5), ("0", 2)] {
        let config = common::config(
            dir.path(),
            &format!(
                "skidder.inputs: [{{type: stdin}}]\noutput.discard: {{}}\nmax_procs: {max_procs}\n"
            ),
        );
        let mut child = common::reap::Reap(
            common::bin()
                .args(["-e", "-c"])
                .arg(&config)
                .current_dir(dir.path())
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut lines = common::LineWatch::new(child.0.stderr.take().unwrap());
        lines.wait_for("skidder started", Duration::from_secs(30));
        let pid = child.0.id();
        // tokio spawns its workers as the runtime is built; each names itself once running.
        let mut got = 0;
        common::poll(Duration::from_secs(10), || {
            got = runtime_threads(pid);
            (got == want).then_some(())
        });
        drop(child.0.stdin.take());
        common::wait_exit(&mut child.0, Duration::from_secs(30));
        assert_eq!(got, want, "max_procs: {max_procs}");
    }
}
