//! The shipped configuration files load, and the reference file documents exactly the keys
//! the code accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use skidder::config::{
    accepted_key_paths, export_yaml, load_with, tree, written_key_paths, EnvSource, LoadOptions,
};

fn config_file(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join(name)
}

fn load_quietly(name: &str) -> skidder::config::Config {
    let opts = LoadOptions {
        path: config_file(name),
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    };
    match load_with(&opts) {
        Ok(c) => c,
        Err(e) => panic!("{name} does not load:\n{e}"),
    }
}

#[test]
fn minimal_config_loads_with_a_generator_and_one_output() {
    let cfg = load_quietly("skidder.yml");
    assert_eq!(cfg.skidder.inputs.len(), 1);
    assert_eq!(cfg.enabled_outputs(), ["output.console"]);
}

#[test]
fn filebeat_section_loads_as_written() {
    let cfg = load_quietly("filebeat-compat.yml");
    let ls = cfg.output.logstash.expect("output.logstash present");
    assert_eq!(ls.hosts.len(), 2);
    assert!(ls.loadbalance);
    assert_eq!(ls.worker, 2);
    assert_eq!(ls.ttl.get(), std::time::Duration::from_secs(300));
    assert_eq!(ls.ssl.certificate_authorities, ["/etc/pki/root/ca.pem"]);
    assert_eq!(
        ls.ssl.key.as_ref().map(|k| k.expose()),
        Some("/etc/pki/client/cert.key")
    );
    assert_eq!(cfg.queue.mem.events, 4096);
    assert_eq!(
        cfg.queue.mem.flush.timeout.get(),
        std::time::Duration::from_secs(1)
    );
}

#[test]
fn reference_config_loads() {
    let cfg = load_quietly("skidder.reference.yml");
    assert_eq!(
        cfg.enabled_outputs(),
        ["output.logstash", "output.elasticsearch"]
    );
    assert_eq!(cfg.skidder.inputs.len(), 6);
}

/// `ssl.*` and `backoff.*` are the same keys wherever they appear; the reference file
/// documents them once in full.
fn normalise(paths: BTreeSet<String>) -> BTreeSet<String> {
    paths
        .into_iter()
        .map(|p| match p.find(".ssl.") {
            Some(i) => format!("*{}", &p[i..]),
            None => p,
        })
        .map(|p| match p.find(".backoff.") {
            Some(i) => format!("*{}", &p[i..]),
            None => p,
        })
        // Filebeat's name for the input list: the same keys as skidder.inputs.
        .map(|p| match p.strip_prefix("filebeat.inputs") {
            Some(rest) => format!("skidder.inputs{rest}"),
            None => p,
        })
        .collect()
}

#[test]
fn reference_file_lists_every_accepted_key_and_no_other() {
    let text = std::fs::read_to_string(config_file("skidder.reference.yml")).expect("readable");
    let tree = tree::parse(&text).expect("valid YAML");
    let mut written = written_key_paths(&tree.to_json());
    // Settings that exclude the active ones (queue.disk vs queue.mem) are written
    // commented out as `#key: value`, no space after the `#`.
    let alternatives: String = text
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .filter(|l| l.starts_with(|c: char| c.is_ascii_lowercase()))
        .map(|l| format!("{l}\n"))
        .collect();
    let alt = tree::parse(&alternatives).expect("valid YAML in #key: value lines");
    written.extend(written_key_paths(&alt.to_json()));
    let written = normalise(written);
    let accepted = normalise(accepted_key_paths());
    let missing: Vec<_> = accepted.difference(&written).collect();
    let unknown: Vec<_> = written.difference(&accepted).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "config/skidder.reference.yml is out of date.\nmissing keys: {missing:?}\nkeys the code does not accept: {unknown:?}"
    );
}

#[test]
fn export_shows_secrets_as_redacted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("s.yml");
    std::fs::write(
        &path,
        "output.elasticsearch:\n  hosts: [es:9200]\n  username: u\n  password: hunter2\n  ssl.certificate: c.pem\n  ssl.key: my-private-key\n",
    )
    .expect("write");
    let cfg = load_with(&LoadOptions {
        path,
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
    .expect("loads");
    let yaml = export_yaml(&cfg);
    assert!(!yaml.contains("hunter2"), "{yaml}");
    assert!(!yaml.contains("my-private-key"), "{yaml}");
    assert!(yaml.contains("password: REDACTED"), "{yaml}");
    // What export prints is itself a configuration that parses.
    tree::parse(&yaml).expect("export output is valid YAML");
}

#[test]
fn exported_config_loads_back_to_the_same_effective_config() {
    let cfg = load_quietly("skidder.reference.yml");
    let yaml = export_yaml(&cfg);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exported.yml");
    std::fs::write(&path, &yaml).expect("write");
    let again = load_with(&LoadOptions {
        path,
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
    .unwrap_or_else(|e| panic!("exported config does not load:\n{e}\n---\n{yaml}"));
    assert_eq!(export_yaml(&again), yaml);
}

#[test]
fn empty_and_comment_only_files_load_defaults_then_ask_for_an_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in [("empty.yml", ""), ("comments.yml", "# nothing here\n")] {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        let err = load_with(&LoadOptions {
            path,
            env: EnvSource::Disabled,
            ..LoadOptions::default()
        })
        .expect_err("no output");
        assert!(
            err.to_string().contains("no output is enabled"),
            "{name}: {err}"
        );
    }
}

#[test]
fn yaml_1_1_booleans_are_accepted_as_beats_does() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("yes.yml");
    std::fs::write(&path, "output.console:\n  enabled: yes\n  pretty: off\n").expect("write");
    let cfg = load_with(&LoadOptions {
        path,
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
    .expect("loads");
    let console = cfg.output.console.expect("console");
    assert!(console.enabled && !console.pretty);
}

#[test]
fn test_config_says_ok_or_lists_problems_with_exit_codes() {
    let (text, code) = skidder::config::test_config(&LoadOptions {
        path: config_file("skidder.yml"),
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    });
    assert_eq!((text.as_str(), code), ("Config OK", 0));
    let (text, code) = skidder::config::test_config(&LoadOptions {
        path: config_file("skidder.yml"),
        overrides: vec![
            "output.console.bulk_max_sise=1".into(),
            "output.discard.enabled=true".into(),
        ],
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    });
    assert_eq!(code, 1);
    assert!(
        text.starts_with("1 problem(s)") || text.starts_with("2 problem(s)"),
        "{text}"
    );
    assert!(
        text.contains("did you mean output.console.bulk_max_size?"),
        "{text}"
    );
}

/// Every scalar under `value` as `path → value`.
fn leaves(value: &serde_json::Value, prefix: &str, out: &mut Vec<(String, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                leaves(v, &path, out);
            }
        }
        other => out.push((prefix.to_string(), other.clone())),
    }
}

/// The reference file documents every key *with its default*: each value it writes equals
/// what an empty configuration gets, except the few keys whose value is an example (hosts,
/// which outputs are enabled, paths of files that must exist).
#[test]
fn reference_file_values_are_the_defaults() {
    use skidder::config::Config;
    let reference = serde_json::to_value(load_quietly("skidder.reference.yml")).expect("json");
    let mut defaults = Config::default();
    defaults.output.console = Some(Default::default());
    defaults.output.file = Some(Default::default());
    defaults.output.discard = Some(Default::default());
    defaults.output.logstash = Some(Default::default());
    defaults.output.elasticsearch = Some(Default::default());
    defaults.output.failover = Some(Default::default());
    let defaults = serde_json::to_value(&defaults).expect("json");
    let mut written = Vec::new();
    leaves(&reference, "", &mut written);
    let mut want = Vec::new();
    leaves(&defaults, "", &mut want);
    let want: std::collections::BTreeMap<_, _> = want.into_iter().collect();
    let example = |path: &str| {
        path.starts_with("skidder.")
            || path.ends_with(".hosts")
            || path.ends_with(".enabled")
            || path == "output.file.path"
    };
    let differ: Vec<String> = written
        .iter()
        .filter(|(path, _)| !example(path))
        .filter_map(|(path, value)| {
            let default = want.get(path)?;
            (default != value).then(|| format!("{path}: reference {value}, default {default}"))
        })
        .collect();
    assert!(
        differ.is_empty(),
        "config/skidder.reference.yml documents values that are not the defaults:\n{}",
        differ.join("\n")
    );
}

/// Beats' own spellings load as written: `logging.level: warning` (and `critical`), and a
/// single string where a list is expected (`hosts: "ls:5044"`), which Beats' config library
/// wraps into a list.
#[test]
fn beats_level_names_and_single_values_for_lists_load_as_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fb.yml");
    for level in ["warning", "critical", "warn", "debug"] {
        std::fs::write(
            &path,
            format!(
                "output.logstash:\n  hosts: \"ls.example:5044\"\n  ssl.certificate_authorities: \"/etc/pki/ca.pem\"\nlogging.level: {level}\n"
            ),
        )
        .expect("write");
        let cfg = load_with(&LoadOptions {
            path: path.clone(),
            env: EnvSource::Disabled,
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("logging.level: {level}:\n{e}"));
        let ls = cfg.output.logstash.expect("output.logstash");
        assert_eq!(ls.hosts, ["ls.example:5044"]);
        assert_eq!(ls.ssl.certificate_authorities, ["/etc/pki/ca.pem"]);
    }
    std::fs::write(&path, "output.discard: {}\nlogging.level: loud\n").expect("write");
    let err = load_with(&LoadOptions {
        path,
        env: EnvSource::Disabled,
        ..LoadOptions::default()
    })
    .expect_err("not a level");
    assert!(err.to_string().contains("warning"), "{err}");
}

/// With several output connections and no `queue.mem.events` written, the memory queue holds
/// `max(pipelining, 2)` batches per connection (config::queue_size), and `export config`
/// prints that value; a value written anywhere (file, `-E`, a preset) is kept as written.
#[test]
fn queue_mem_events_is_sized_for_the_connections_unless_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let load = |name: &str, text: &str, overrides: &[&str]| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write");
        load_with(&LoadOptions {
            path,
            env: EnvSource::Disabled,
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            ..LoadOptions::default()
        })
        .unwrap_or_else(|e| panic!("{name} does not load:\n{e}"))
    };
    let exported = |cfg: &skidder::config::Config| {
        let v: serde_json::Value = serde_yaml::from_str(&export_yaml(cfg)).expect("export is YAML");
        v.pointer("/queue/mem/events").and_then(|n| n.as_u64())
    };
    let ls = "output.logstash:\n  hosts: [a:5044, b:5044]\n";
    let cases: [(&str, String, &[&str], u64); 6] = [
        ("one.yml", ls.to_string(), &[], 3200),
        ("workers.yml", format!("{ls}  worker: 2\n"), &[], 6400),
        (
            "lb.yml",
            format!("{ls}  worker: 2\n  loadbalance: true\n"),
            &[],
            12800,
        ),
        (
            "written.yml",
            format!("{ls}  worker: 2\nqueue.mem.events: 3200\n"),
            &[],
            3200,
        ),
        (
            "flag.yml",
            format!("{ls}  worker: 2\n"),
            &["queue.mem.events=4000"],
            4000,
        ),
        (
            "preset.yml",
            // `latency` writes 4100 (one connection alone would get 3200).
            "output.elasticsearch:\n  hosts: [es:9200]\n  preset: latency\n".into(),
            &[],
            4100,
        ),
    ];
    for (name, text, overrides, want) in cases {
        let cfg = load(name, &text, overrides);
        assert_eq!(cfg.queue.mem.events as u64, want, "{name}:\n{text}");
        assert_eq!(exported(&cfg), Some(want), "{name}: export config");
    }
}
