//! No secret reaches a log line: exercise the failure paths with secrets configured, capture
//! everything logged, and search it.

mod credentials_pki;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::{Arc, Mutex};

use credentials_pki::*;
use skidder::config::{SslConfig, VerificationMode};
use skidder::credentials::keystore::Keystore;
use skidder::credentials::{Alpn, EsAuth, Secret, TlsSettings, TlsSource};
use tracing::{error, warn};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

/// A line from the middle of a PEM body: present in the log only if the key leaked.
fn body_line(pem: &str) -> String {
    let lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    lines[lines.len() / 2].to_string()
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::TRACE)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let passphrase = "hunter2-passphrase-XYZ";
    let other_passphrase = "rotated-passphrase-QRS";
    let wrong_passphrase = "wrong-passphrase-ABC";
    let es_password = "es-password-LMN";
    let api_key = "myid:api-key-value-TUV";

    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("client", &["client"]);
    let server_leaf = ca.leaf("server", &["localhost"]);
    let files = Files::new();
    let encrypted = leaf.encrypted_key_pem(passphrase);
    let key_path = files.write("client.key", &encrypted);
    let cfg = SslConfig {
        certificate_authorities: vec![ca.cert_pem.clone()],
        certificate: Some(files.write("client.crt", &leaf.cert_pem)),
        key: Some(Secret::new(key_path)),
        key_passphrase: Some(Secret::new(wrong_passphrase)),
        ..SslConfig::default()
    };

    // A wrong passphrase, logged as an output would log it.
    let settings = TlsSettings::from_config(&cfg).unwrap();
    let err = settings.client_config(Alpn::None).unwrap_err();
    error!(error = %err, debug = ?err, settings = ?settings, "cannot set up TLS");

    // Inline key with a wrong passphrase, and a mangled inline key.
    let mut inline = cfg.clone();
    inline.key = Some(Secret::new(encrypted.clone()));
    let err = TlsSettings::from_config(&inline)
        .unwrap()
        .client_config(Alpn::None)
        .unwrap_err();
    error!(error = %err, debug = ?err, "cannot set up TLS");
    let mut mangled = cfg.clone();
    mangled.key = Some(Secret::new(leaf.key_pem.replace("-----BEGIN", "BEGIN")));
    let err = TlsSettings::from_config(&mangled)
        .unwrap()
        .client_config(Alpn::None)
        .unwrap_err();
    error!(error = %err, debug = ?err, "cannot set up TLS");

    // A running source whose key is replaced by one under another passphrase: the reload
    // fails and is logged (by the credential layer itself).
    let mut good = cfg.clone();
    good.key_passphrase = Some(Secret::new(passphrase));
    let source = TlsSource::client(TlsSettings::from_config(&good).unwrap(), Alpn::None).unwrap();
    files.write("client.key", &leaf.encrypted_key_pem(other_passphrase));
    source.client_config().expect("old material is kept");
    warn!(source = ?source, "source state");

    // verification_mode none warns at start and on connect.
    let none_cfg = SslConfig {
        verification_mode: VerificationMode::None,
        certificate: Some(leaf.cert_pem.clone()),
        key: Some(Secret::new(leaf.key_pem.clone())),
        ..SslConfig::default()
    };
    let none = TlsSettings::from_config(&none_cfg).unwrap();
    let server = TlsSettings::from_config(&server_ssl(&files, &server_leaf, None))
        .unwrap()
        .server_config()
        .unwrap();
    let out = handshake(
        server,
        none.client_config(Alpn::None).unwrap(),
        none.server_name("localhost").unwrap(),
    )
    .await;
    out.client.expect("none mode connects");
    warn!(settings = ?none, "settings with an inline key");

    // Elasticsearch credentials and their refusal.
    let auth = EsAuth::new(
        None,
        Some("elastic"),
        Some(&Secret::new(es_password)),
        &BTreeMap::new(),
    )
    .unwrap();
    warn!(error = %auth.refused("es:9200", 401), auth = ?auth, "refused");
    let auth = EsAuth::new(Some(&Secret::new(api_key)), None, None, &BTreeMap::new()).unwrap();
    warn!(error = %auth.refused("es:9200", 403), auth = ?auth, "refused");

    // The keystore with a wrong passphrase.
    let ks_dir = tempfile::tempdir().unwrap();
    let ks_path = Keystore::path_in(ks_dir.path());
    let mut ks = Keystore::create_with(&ks_path, Some(Secret::new(passphrase)), false).unwrap();
    ks.add("ES_PWD", Secret::new(es_password), false).unwrap();
    let err = Keystore::open_with(&ks_path, Some(Secret::new(wrong_passphrase))).unwrap_err();
    error!(error = %err, debug = ?err, keystore = ?ks, "keystore");

    let text = captured.text();
    assert!(text.contains("cannot decrypt"), "{text}");
    assert!(
        text.contains("keeping the previous certificate and key"),
        "{text}"
    );
    assert!(text.contains("NOT verified"), "{text}");
    assert!(text.contains("username elastic"), "{text}");
    let api_b64 = "bXlpZDphcGkta2V5LXZhbHVlLVRVVg==";
    for secret in [
        passphrase.to_string(),
        other_passphrase.to_string(),
        wrong_passphrase.to_string(),
        es_password.to_string(),
        "api-key-value-TUV".to_string(),
        api_b64.to_string(),
        "ZWxhc3RpYzplcy1wYXNzd29yZC1MTU4=".to_string(), // Basic elastic:es-password-LMN
        body_line(&leaf.key_pem),
        body_line(&encrypted),
    ] {
        assert!(
            !text.contains(&secret),
            "secret {secret:?} found in the log:\n{text}"
        );
    }
}

#[test]
fn certificate_expiring_within_the_warning_period_is_logged() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let ca = Ca::new("Test CA");
    let now = time::OffsetDateTime::now_utc();
    let soon = ca.leaf_valid(
        "client-soon",
        &["client"],
        now - time::Duration::days(300),
        now + time::Duration::days(5),
    );
    let later = ca.leaf("client-later", &["client"]);
    for leaf in [&soon, &later] {
        let cfg = SslConfig {
            certificate_authorities: vec![ca.cert_pem.clone()],
            certificate: Some(leaf.cert_pem.clone()),
            key: Some(Secret::new(leaf.key_pem.clone())),
            ..SslConfig::default()
        };
        TlsSettings::from_config(&cfg)
            .unwrap()
            .client_config(Alpn::None)
            .unwrap();
    }
    let text = captured.text();
    assert!(text.contains("WARN"), "{text}");
    assert!(text.contains("certificate expires soon"), "{text}");
    assert!(text.contains("client-soon"), "{text}");
    assert!(!text.contains("client-later"), "{text}");
    assert_eq!(text.matches("expires soon").count(), 1, "{text}");
}
