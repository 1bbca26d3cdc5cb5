//! The credential lifecycle against the stand-in Elasticsearch with security
//! (tests/common/es_security.rs; the OpenSearch node has no security plugin): an API key
//! about to expire is WARNed about and refused once expired; a key invalidated mid-run is
//! rotated through `api_key_path` and through the keystore with no event lost and no
//! restart, the log naming key ids only; `test output` names a missing `auto_configure`;
//! `setup roles` bodies follow the documented role schema; the `apikey` commands.

mod common;
#[path = "common/es_security.rs"]
mod es_security;
#[path = "common/es_server.rs"]
mod es_server;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use es_security::{Key, Security};
use serde_json::json;

const LIMIT: Duration = Duration::from_secs(60);
const INDEX: &str = "logs-skidder";

fn writer_descriptors() -> serde_json::Value {
    json!({"skidder_writer": {"cluster": [], "indices": [
        {"names": [INDEX], "privileges": ["create_doc", "auto_configure"]}]}})
}

/// The stand-in on a runtime that lives as long as the returned values.
fn standin() -> (tokio::runtime::Runtime, Security, es_server::Server) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let sec = Security::new();
    let server = rt.block_on(sec.start());
    (rt, sec, server)
}

fn yaml(host: &str, count: u64, eps: u64, credential: &str) -> String {
    format!(
        "skidder.inputs:
  - type: generator
    count: {count}
    eps: {eps}
queue.mem.flush.min_events: 50
queue.mem.flush.timeout: 50ms
path.data: data
output.elasticsearch:
  hosts: [\"{host}\"]
  index: {INDEX}
  bulk_max_size: 100
  backoff.init: 100ms
  backoff.max: 10s
{credential}
"
    )
}

/// Every form of `key`'s secret that must never be printed.
fn assert_no_secret(text: &str, key: &Key) {
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
    for form in [key.secret.clone(), b64(&key.credential())] {
        assert!(
            !text.contains(&form),
            "a secret of key {} was printed:\n{text}",
            key.id
        );
    }
}

fn seqs(sec: &Security) -> Vec<u64> {
    sec.docs()
        .iter()
        .filter_map(|d| d["seq"].as_u64())
        .collect()
}

fn assert_all_delivered(sec: &Security, count: u64) {
    let seen = seqs(sec);
    let distinct: BTreeSet<u64> = seen.iter().copied().collect();
    assert_eq!(
        distinct,
        (1..=count).collect::<BTreeSet<u64>>(),
        "every event indexed (indexed {} documents)",
        seen.len()
    );
}

fn write_atomically(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn a_key_about_to_expire_is_warned_about_and_refused_once_expired() {
    let (_rt, sec, server) = standin();
    let key = sec.create_key(
        "admin",
        "short",
        Some(Duration::from_secs(5)),
        writer_descriptors(),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        &yaml(
            &server.host(),
            10,
            0,
            &format!("  api_key: \"{}\"", key.credential()),
        ),
    );
    let first = common::run_config(dir.path(), &cfg);
    assert_eq!(first.code(), Some(0), "{}", first.stderr);
    let warn = first
        .stderr
        .lines()
        .find(|l| l.contains("WARN") && l.contains(&format!("API key id {} expires at", key.id)))
        .unwrap_or_else(|| panic!("no expiry WARN:\n{}", first.stderr));
    assert!(
        warn.contains("expires=20"),
        "the WARN carries the date: {warn}"
    );
    assert_all_delivered(&sec, 10);
    assert_no_secret(&first.stderr, &key);

    let expiration = key.expiration.unwrap();
    common::wait_until("the key's expiry", Duration::from_secs(10), || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as i64
            > expiration
    });
    let second = common::run_config(dir.path(), &cfg);
    assert_eq!(
        second.code(),
        Some(1),
        "refused at start:\n{}",
        second.stderr
    );
    assert!(
        second
            .stderr
            .contains(&format!("API key id {} is refused", key.id))
            && second.stderr.contains("api key is expired"),
        "{}",
        second.stderr
    );
    assert!(
        !second.stderr.contains("skidder started"),
        "no input started:\n{}",
        second.stderr
    );
    assert_no_secret(&second.stderr, &key);
}

/// Runs `count` events while the key in use is invalidated and a new one is put in place
/// by `rotate`; checks that nothing is lost, nothing restarted and only ids are logged.
fn invalidate_and_rotate(
    credential: &str,
    setup: impl FnOnce(&Path, &Key),
    rotate: impl FnOnce(&Path, &Key),
) {
    const COUNT: u64 = 1500;
    let (_rt, sec, server) = standin();
    let old = sec.create_key("admin", "old", None, writer_descriptors());
    let new = sec.create_key("admin", "new", None, writer_descriptors());
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path(), &old);
    let cfg = common::config(dir.path(), &yaml(&server.host(), COUNT, 400, credential));
    let (mut child, mut lines) = common::spawn_run(dir.path(), &cfg);
    common::wait_until("the first documents", LIMIT, || seqs(&sec).len() >= 100);
    sec.invalidate(&old.id);
    lines.wait_for_line("the ERROR naming the invalidated key", LIMIT, |l| {
        l.contains("ERROR")
            && l.contains(&format!("api_key id {}", old.id))
            && l.contains("api key has been invalidated")
    });
    let indexed_while_refused = seqs(&sec).len();
    rotate(dir.path(), &new);
    let status = common::wait_exit(&mut child.0, LIMIT);
    let stderr = lines.rest();
    assert!(status.success(), "{status:?}\n{stderr}");
    assert!(
        seqs(&sec).len() > indexed_while_refused,
        "delivery resumed with the new key"
    );
    assert_all_delivered(&sec, COUNT);
    let errors = stderr
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("refused the credential"))
        .count();
    assert_eq!(errors, 1, "one ERROR for the refused key:\n{stderr}");
    assert!(
        stderr.lines().any(|l| l.contains("INFO")
            && l.contains("credential reloaded")
            && l.contains(&format!("to=api_key id {}", new.id))),
        "the reload names the new key id:\n{stderr}"
    );
    let totals = common::totals(&stderr);
    assert_eq!(totals["credential_reloads"], "1", "{stderr}");
    assert_eq!(totals["dropped"], "0");
    assert_eq!(
        stderr.matches("skidder started").count(),
        1,
        "no restart:\n{stderr}"
    );
    assert_no_secret(&stderr, &old);
    assert_no_secret(&stderr, &new);
}

#[test]
fn an_invalidated_key_is_rotated_through_api_key_path_without_loss() {
    invalidate_and_rotate(
        "  api_key_path: key.txt",
        |dir, old| write_atomically(&dir.join("key.txt"), &format!("{}\n", old.credential())),
        |dir, new| write_atomically(&dir.join("key.txt"), &format!("{}\n", new.credential())),
    );
}

fn keystore_add(dir: &Path, name: &str, value: &str, force: bool) {
    let mut args = vec!["keystore", "add", name, "--stdin", "-c", "skidder.yml"];
    if force {
        args.push("--force");
    }
    let r = common::run(dir, &args, value.as_bytes());
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
}

#[test]
fn an_invalidated_key_is_rotated_through_the_keystore_without_loss() {
    invalidate_and_rotate(
        "  api_key: ${ES_API_KEY}",
        |dir, old| {
            // The configuration names path.data; the keystore lives there.
            std::fs::write(dir.join("skidder.yml"), "path.data: data\n").unwrap();
            let r = common::run(dir, &["keystore", "create", "-c", "skidder.yml"], b"");
            assert_eq!(r.code(), Some(0), "{}", r.stderr);
            keystore_add(dir, "ES_API_KEY", &old.credential(), false);
        },
        |dir, new| keystore_add(dir, "ES_API_KEY", &new.credential(), true),
    );
}

#[test]
fn a_bad_rotation_keeps_the_working_key_and_logs_an_error() {
    const COUNT: u64 = 600;
    let (_rt, sec, server) = standin();
    let key = sec.create_key("admin", "k", None, writer_descriptors());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("key.txt");
    write_atomically(&path, &key.credential());
    let cfg = common::config(
        dir.path(),
        &yaml(&server.host(), COUNT, 300, "  api_key_path: key.txt"),
    );
    let (mut child, mut lines) = common::spawn_run(dir.path(), &cfg);
    common::wait_until("the first documents", LIMIT, || !seqs(&sec).is_empty());
    write_atomically(&path, "not a key\n");
    lines.wait_for_line("the ERROR of the bad reload", LIMIT, |l| {
        l.contains("ERROR") && l.contains("cannot be used; keeping the previous credential")
    });
    let status = common::wait_exit(&mut child.0, LIMIT);
    let stderr = lines.rest();
    assert!(status.success(), "{stderr}");
    assert_all_delivered(&sec, COUNT);
    assert!(
        !stderr.contains("not a key"),
        "the file's content is not quoted"
    );
    assert_no_secret(&stderr, &key);
}

#[test]
fn test_output_names_a_missing_auto_configure() {
    let (_rt, sec, server) = standin();
    let key = sec.create_key(
        "admin",
        "no-autoconf",
        None,
        json!({"w": {"cluster": [], "indices": [{"names": [INDEX], "privileges": ["create_doc"]}]}}),
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(
        dir.path(),
        &yaml(
            &server.host(),
            1,
            0,
            &format!("  api_key: \"{}\"", key.credential()),
        ),
    );
    let r = common::run(
        dir.path(),
        &["test", "output", "-c", cfg.to_str().unwrap()],
        b"",
    );
    assert_eq!(r.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout
            .contains(&format!("missing auto_configure on {INDEX}"))
            && r.stdout.contains("create_doc yes, auto_configure no"),
        "{}",
        r.stdout
    );
    assert!(
        r.stdout
            .contains(&format!("API key no-autoconf (id {})", key.id)),
        "{}",
        r.stdout
    );
    assert_no_secret(&r.stdout, &key);
}

/// A configuration for the security commands: the stand-in's superuser.
fn admin_yaml(host: &str) -> String {
    yaml(host, 1, 0, "  username: admin\n  password: admin-pw")
}

#[test]
fn setup_roles_bodies_follow_the_role_schema_and_apply_creates_them() {
    let (_rt, sec, server) = standin();
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path(), &admin_yaml(&server.host()));
    let cfg = cfg.to_str().unwrap();

    let summary = common::run(dir.path(), &["setup", "roles", "-c", cfg], b"");
    assert_eq!(summary.code(), Some(0), "{}", summary.stderr);
    assert!(
        summary
            .stdout
            .contains(&format!("skidder_writer (writer feature): cluster [], indices [create_doc, auto_configure on {INDEX}]"))
            && summary.stdout.contains("no monitoring role is needed"),
        "{}",
        summary.stdout
    );

    let dry = common::run(dir.path(), &["setup", "roles", "--dry-run", "-c", cfg], b"");
    assert_eq!(dry.code(), Some(0), "{}", dry.stderr);
    let mut bodies = std::collections::BTreeMap::new();
    for block in dry.stdout.split("PUT /_security/role/").skip(1) {
        let (name, body) = block.split_once('\n').unwrap();
        let body: serde_json::Value = serde_json::from_str(body.trim()).unwrap();
        es_security::check_role_body(&body)
            .unwrap_or_else(|e| panic!("role {name} does not follow the role schema: {e}"));
        bodies.insert(name.to_string(), body);
    }
    assert_eq!(
        bodies.keys().collect::<Vec<_>>(),
        ["skidder_api_key_manager", "skidder_writer"]
    );
    assert_eq!(
        bodies["skidder_writer"]["indices"],
        json!([{"names": [INDEX], "privileges": ["create_doc", "auto_configure"], "allow_restricted_indices": false}])
    );
    assert_eq!(bodies["skidder_writer"]["cluster"], json!([]));
    assert_eq!(
        bodies["skidder_api_key_manager"]["cluster"],
        json!(["manage_own_api_key"])
    );
    assert!(
        sec.role("skidder_writer").is_none(),
        "--dry-run creates nothing"
    );

    let apply = common::run(dir.path(), &["setup", "roles", "--apply", "-c", cfg], b"");
    assert_eq!(apply.code(), Some(0), "{}", apply.stderr);
    assert!(
        apply.stdout.contains("role skidder_writer created"),
        "{}",
        apply.stdout
    );
    assert_eq!(
        sec.role("skidder_writer").unwrap(),
        bodies["skidder_writer"]
    );

    // A user holding only the writer role ships with the default settings.
    sec.add_user("shipper", "shipper-pw", &["skidder_writer"]);
    let ship = common::config(
        dir.path(),
        &yaml(
            &server.host(),
            20,
            0,
            "  username: shipper\n  password: shipper-pw",
        ),
    );
    let r = common::run_config(dir.path(), &ship);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_all_delivered(&sec, 20);
}

#[test]
fn apikey_create_info_verify_invalidate() {
    let (_rt, sec, server) = standin();
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::config(dir.path(), &admin_yaml(&server.host()));
    let cfg = cfg.to_str().unwrap();
    let skidder = |args: &[&str], stdin: &[u8]| {
        let mut all = args.to_vec();
        all.extend(["-c", cfg]);
        let r = common::run(dir.path(), &all, stdin);
        assert_eq!(r.code(), Some(0), "{args:?}: {}\n{}", r.stdout, r.stderr);
        r.stdout
    };

    let created = skidder(
        &["apikey", "create", "--name", "ship", "--expiration", "1d"],
        b"",
    );
    let key = sec.keys().into_iter().find(|k| k.name == "ship").unwrap();
    assert!(created.contains(&format!("Id: {}", key.id)), "{created}");
    assert_eq!(
        created.matches(&key.credential()).count(),
        1,
        "printed once, in the id:api_key form: {created}"
    );
    assert_eq!(
        key.descriptors["skidder_writer"]["indices"][0]["privileges"],
        json!(["create_doc", "auto_configure"]),
        "limited to the writer role"
    );

    let info = skidder(&["apikey", "info", "--id", &key.id], b"");
    assert!(
        info.contains("Name: ship")
            && info.contains("Invalidated: false")
            && info.contains("Expiration: 20"),
        "{info}"
    );
    let verify = skidder(
        &["apikey", "verify", "--credentials", "-"],
        key.credential().as_bytes(),
    );
    assert!(
        verify.contains("Authorized for the writer role: Yes")
            && verify.contains(
                "Authorized for the api_key_manager role: No (missing cluster manage_own_api_key)"
            ),
        "{verify}"
    );
    assert_no_secret(&format!("{info}{verify}"), &key);

    let stored = skidder(
        &[
            "apikey",
            "create",
            "--name",
            "stored",
            "--keystore-key",
            "ES_API_KEY",
            "--path.data",
            "data",
        ],
        b"",
    );
    let stored_key = sec.keys().into_iter().find(|k| k.name == "stored").unwrap();
    assert!(stored.contains("ES_API_KEY"), "{stored}");
    assert_no_secret(&stored, &stored_key);
    let listed = skidder(&["keystore", "list", "--path.data", "data"], b"");
    assert!(listed.contains("ES_API_KEY"), "{listed}");

    let gone = skidder(&["apikey", "invalidate", "--id", &key.id], b"");
    assert!(
        gone.contains(&format!("Invalidated keys: {}", key.id)),
        "{gone}"
    );
    assert!(sec.key(&key.id).unwrap().invalidated.is_some());
    let valid = skidder(&["apikey", "info", "--id", &key.id, "--valid-only"], b"");
    assert!(valid.contains("0 key(s)"), "{valid}");
}
