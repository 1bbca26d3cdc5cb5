//! Config corpus: sections of Filebeat 7.17.29's own `filebeat.reference.yml` (read from the
//! Go module that `.ci/peers/filebeat.sh` downloads), uncommented as a user would, load with
//! `skidder test config`, and its WARN lines name exactly what is ignored. Beats 8.x-only
//! keys (`preset`, `allow_older_versions`, `idle_connection_timeout`) are written out below
//! from ../shared/design/filebeat-reference.md §9.
//!
//! Adding a file or section is one line in [`CORPUS`].

mod common;
mod credentials_pki;
#[path = "common/filebeat.rs"]
mod filebeat;

use std::path::Path;

use credentials_pki::Ca;

/// One corpus entry.
struct Case {
    /// File inside the beats module.
    file: &'static str,
    /// The section: from the first line containing `from` to the line before the first
    /// line after it containing `to` (`""`: to the end of the file).
    from: &'static str,
    to: &'static str,
    /// Written keys a user would not set along with the others (both `api_key` and a
    /// password, say): uncommented lines starting with one of these are left out.
    skip: &'static [&'static str],
    /// YAML appended: an output, for a section that has none.
    extra: &'static str,
    /// The WARN lines `skidder test config` must print, each a prefix, in order; no others.
    warns: &'static [&'static str],
}

const REF: &str = "filebeat/filebeat.reference.yml";
/// An input, for a section that has none (until `filebeat.inputs` loads, see issue 16).
const STDIN: &str = "skidder.inputs: [{type: stdin}]\n";
/// An input and an output, for a section that has neither.
const DISCARD: &str = "skidder.inputs: [{type: stdin}]\noutput.discard: {}\n";

#[rustfmt::skip]
const CORPUS: &[Case] = &[
    Case { file: REF, from: "---- Elasticsearch Output ----", to: "---- Logstash Output ----", skip: &["api_key:", "kerberos."], extra: STDIN,
           warns: &["output.elasticsearch.ssl.supported_protocols: TLSv1.1 dropped"] },
    Case { file: REF, from: "---- Logstash Output ----", to: "---- Kafka Output ----", skip: &[], extra: STDIN,
           warns: &["output.logstash.ssl.supported_protocols: TLSv1.1 dropped"] },
    // The log input, enabled; json.* left out: with multiline and without message_key
    // Filebeat refuses it too. keep_null, publisher_pipeline and pipeline are libbeat's
    // per-input pipeline settings, which skidder's inputs do not take.
    Case { file: REF, from: "filebeat.inputs:", to: "---- Filestream input ----",
           skip: &["enabled:", "json.", "keep_null:", "publisher_pipeline.", "pipeline:"], extra: "output.discard: {}\n",
           warns: &["filebeat.inputs.0: type: log runs as skidder's filestream input"] },
    Case { file: REF, from: "#queue:", to: "#disk:", skip: &[], extra: DISCARD, warns: &[] },
    Case { file: REF, from: "== Logging ==", to: "== X-Pack Monitoring", skip: &[], extra: DISCARD, warns: &[] },
    Case { file: REF, from: "== Dashboards ==", to: "== Logging ==", skip: &[], extra: DISCARD, warns: &["setup: ignored"] },
    Case { file: REF, from: "== X-Pack Monitoring", to: "== HTTP Endpoint", skip: &[], extra: DISCARD, warns: &["monitoring: ignored"] },
    Case { file: REF, from: "== Instrumentation ==", to: "", skip: &[], extra: DISCARD,
           warns: &["migration: ignored", "instrumentation: ignored"] },
];

/// Uncomments `#key: value` lines (a `#` directly before a key, Elastic's way of writing a
/// default) and drops prose comments (`# Text`) and blank lines.
fn uncomment(section: &str, skip: &[&str]) -> String {
    let mut out = String::new();
    for line in section.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let text = match trimmed.strip_prefix('#') {
            Some(rest)
                if rest.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                    && rest
                        .split_whitespace()
                        .next()
                        .is_some_and(|k| k.ends_with(':')) =>
            {
                rest
            }
            Some(_) => continue,
            None if trimmed.is_empty() => continue,
            None => trimmed,
        };
        if skip.iter().any(|s| text.starts_with(s)) {
            continue;
        }
        out.push_str(indent);
        out.push_str(text);
        out.push('\n');
    }
    out
}

fn section(text: &str, from: &str, to: &str) -> String {
    let start = text
        .find(from)
        .unwrap_or_else(|| panic!("{from:?} not found"));
    let start = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let rest = &text[start..];
    let first_nl = rest.find('\n').unwrap_or(rest.len());
    let end = if to.is_empty() {
        rest.len()
    } else {
        rest[first_nl..]
            .find(to)
            .map(|i| first_nl + i)
            .unwrap_or_else(|| panic!("{to:?} not found after {from:?}"))
    };
    let end = rest[..end].rfind('\n').map_or(end, |i| i + 1);
    rest[..end].to_string()
}

/// The PKI a user would point the reference's `/etc/pki/...` paths at.
fn pki(dir: &Path) -> Vec<(&'static str, String)> {
    let ca = Ca::new("corpus-ca");
    let leaf = ca.leaf("client", &["client"]);
    let write = |name: &str, pem: &str| {
        let p = dir.join(name);
        std::fs::write(&p, pem).unwrap();
        p.display().to_string()
    };
    vec![
        ("/etc/pki/root/ca.pem", write("ca.pem", &ca.cert_pem)),
        (
            "/etc/pki/client/cert.pem",
            write("cert.pem", &leaf.cert_pem),
        ),
        ("/etc/pki/client/cert.key", write("cert.key", &leaf.key_pem)),
    ]
}

/// `skidder test config` on `yaml`: exit code, stdout and the WARN lines of stderr.
fn test_config(dir: &Path, yaml: &str) -> (Option<i32>, String, Vec<String>) {
    let config = common::config(dir, yaml);
    let out = common::bin()
        .args(["-c", config.to_str().unwrap(), "test", "config"])
        .current_dir(dir)
        .env_remove("HTTP_PROXY")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    let warns = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("WARN "))
        .map(str::to_string)
        .collect();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).to_string() + &stderr,
        warns,
    )
}

fn assert_warns(name: &str, got: &[String], want: &[&str]) {
    let matches = got.len() == want.len() && got.iter().zip(want).all(|(g, w)| g.starts_with(w));
    assert!(
        matches,
        "{name}: WARN lines differ\nwanted (prefixes): {want:#?}\ngot: {got:#?}"
    );
}

#[test]
fn filebeat_reference_sections_load_with_exactly_the_expected_warnings() {
    let src = filebeat::beats_source();
    let dir = tempfile::tempdir().unwrap();
    let paths = pki(dir.path());
    for case in CORPUS {
        let text = std::fs::read_to_string(src.join(case.file)).unwrap();
        let mut yaml = uncomment(&section(&text, case.from, case.to), case.skip);
        for (from, to) in &paths {
            yaml = yaml.replace(from, to);
        }
        yaml.push_str(case.extra);
        let name = format!("{} [{}]", case.file, case.from);
        let (code, out, warns) = test_config(dir.path(), &yaml);
        assert_eq!(code, Some(0), "{name} refused:\n{out}\n--- config:\n{yaml}");
        assert!(out.contains("Config OK"), "{name}: {out}");
        assert_warns(&name, &warns, case.warns);
    }
}

#[test]
fn beats_8_output_keys_load_and_a_preset_names_what_it_overrides() {
    let dir = tempfile::tempdir().unwrap();
    // The 8.12+ filebeat.yml's output block (preset: balanced), as a user edits it.
    let (code, out, warns) = test_config(
        dir.path(),
        &format!("output.elasticsearch:\n  hosts: [\"localhost:9200\"]\n  preset: balanced\n  worker: 4\n\
         \x20 allow_older_versions: true\n  idle_connection_timeout: 3s\n\
         queue.mem.events: 9000\n{STDIN}"),
    );
    assert_eq!(code, Some(0), "{out}");
    assert_warns(
        "preset",
        &warns,
        &[
            "output.elasticsearch.preset: balanced sets output.elasticsearch.worker to 1 over the configured 4",
            "output.elasticsearch.preset: balanced replaces every queue.* setting",
        ],
    );
    // A typo of an ignored section is still an error with a suggestion.
    let (code, out, _) = test_config(dir.path(), &format!("setpu.kibana.host: k\n{DISCARD}"));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("setpu: unknown key; did you mean setup?"),
        "{out}"
    );
}

#[test]
fn filebeats_own_filebeat_yml_loads_as_written() {
    let text =
        std::fs::read_to_string(filebeat::beats_source().join("filebeat/filebeat.yml")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // As shipped its one input is disabled: Filebeat idles, skidder says there is nothing
    // to ship (a deliberate difference, docs/beats-compatibility.md).
    let (code, out, _) = test_config(dir.path(), &text);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no input is configured"), "{out}");
    // As a user turns it on.
    let yaml = text.replace("enabled: false", "enabled: true");
    let (code, out, warns) = test_config(dir.path(), &yaml);
    assert_eq!(code, Some(0), "filebeat.yml refused:\n{out}");
    assert!(out.contains("Config OK"), "{out}");
    assert_warns(
        "filebeat.yml",
        &warns,
        &[
            "setup: ignored",
            "filebeat.config.modules: ignored",
            "processors.1.add_cloud_metadata: loaded but not applied",
            "processors.2.add_docker_metadata: loaded but not applied",
            "processors.3.add_kubernetes_metadata: loaded but not applied",
        ],
    );
}
