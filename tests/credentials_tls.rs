//! Real TLS handshakes over loopback between configs built by the credential layer.

mod credentials_pki;

use credentials_pki::*;
use skidder::config::{ClientAuthentication, SslConfig, VerificationMode};
use skidder::credentials::pinning::{self, Pin};
use skidder::credentials::{describe_handshake, Alpn, Secret, TlsSettings, TlsSource};
use time::OffsetDateTime;

fn settings(c: &SslConfig) -> TlsSettings {
    TlsSettings::from_config(c).expect("valid ssl settings")
}

fn name(s: &TlsSettings, host: &str) -> rustls_pki_types::ServerName<'static> {
    s.server_name(host).unwrap()
}

/// Server: `leaf` (no client auth). Client: trusts `trust`, with `mode`. Connects to `host`.
async fn connect_with_mode(
    leaf: &Leaf,
    trust: &Ca,
    mode: VerificationMode,
    host: &str,
) -> Result<(), String> {
    let files = Files::new();
    let server = settings(&server_ssl(&files, leaf, None))
        .server_config()
        .unwrap();
    let mut c = client_ssl(trust, None);
    c.verification_mode = mode;
    let s = settings(&c);
    let client = s.client_config(Alpn::None).unwrap();
    handshake(server, client, name(&s, host))
        .await
        .client
        .map(|_| ())
}

#[tokio::test]
async fn mutual_tls_succeeds_and_both_sides_see_the_peer() {
    let ca = Ca::new("Test CA");
    let server_leaf = ca.leaf("server", &["localhost", "127.0.0.1"]);
    let client_leaf = ca.leaf("client", &["client"]);
    let files = Files::new();
    let s_settings = settings(&server_ssl(&files, &server_leaf, Some(&ca)));
    assert_eq!(
        s_settings.client_authentication(),
        ClientAuthentication::Required
    );
    let c_settings = settings(&client_ssl(&ca, Some(&client_leaf)));
    let out = handshake(
        s_settings.server_config().unwrap(),
        c_settings.client_config(Alpn::None).unwrap(),
        name(&c_settings, "127.0.0.1"),
    )
    .await;
    let report = out.client.expect("client handshake");
    assert_eq!(report.chain.len(), 1);
    assert!(report.chain[0].subject.contains("CN=server"), "{report}");
    assert!(report.chain[0].issuer.contains("CN=Test CA"), "{report}");
    assert!(report.version.starts_with("TLSv1.3"), "{report}");
    let seen = out.server.expect("server handshake").expect("client cert");
    assert!(subject_of(&seen[0]).contains("CN=client"));
}

#[tokio::test]
async fn client_without_certificate_is_refused_when_required_and_accepted_when_optional() {
    let ca = Ca::new("Test CA");
    let server_leaf = ca.leaf("server", &["localhost"]);
    let files = Files::new();
    let required = settings(&server_ssl(&files, &server_leaf, Some(&ca)));
    let c = settings(&client_ssl(&ca, None));
    let out = handshake(
        required.server_config().unwrap(),
        c.client_config(Alpn::None).unwrap(),
        name(&c, "localhost"),
    )
    .await;
    let err = out
        .server
        .expect_err("server must refuse a client without certificate");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(out.client.is_err(), "client must see the refusal");

    let mut optional_cfg = server_ssl(&files, &server_leaf, Some(&ca));
    optional_cfg.client_authentication = Some(ClientAuthentication::Optional);
    let optional = settings(&optional_cfg);
    let out = handshake(
        optional.server_config().unwrap(),
        c.client_config(Alpn::None).unwrap(),
        name(&c, "localhost"),
    )
    .await;
    out.client
        .expect("optional client auth accepts a client without certificate");
    assert_eq!(out.server.unwrap(), None);
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_refused() {
    let ca = Ca::new("Test CA");
    let rogue = Ca::new("Rogue CA");
    let server_leaf = ca.leaf("server", &["localhost"]);
    let client_leaf = rogue.leaf("client", &["client"]);
    let files = Files::new();
    let s = settings(&server_ssl(&files, &server_leaf, Some(&ca)));
    let c = settings(&client_ssl(&ca, Some(&client_leaf)));
    let out = handshake(
        s.server_config().unwrap(),
        c.client_config(Alpn::None).unwrap(),
        name(&c, "localhost"),
    )
    .await;
    let err = out.server.expect_err("server must refuse");
    assert!(
        err.contains("UnknownIssuer") || err.contains("unknown issuer"),
        "{err}"
    );
}

#[tokio::test]
async fn every_verification_mode_against_good_and_bad_certificates() {
    use VerificationMode::*;
    let ca = Ca::new("Test CA");
    let other = Ca::new("Other CA");
    let good = ca.leaf("server", &["localhost", "127.0.0.1"]);
    let wrong_name = ca.leaf("server", &["elsewhere.example"]);
    let wrong_ca = other.leaf("server", &["localhost"]);
    let now = OffsetDateTime::now_utc();
    let expired = ca.leaf_valid(
        "server",
        &["localhost"],
        now - time::Duration::days(30),
        now - time::Duration::days(1),
    );
    // (certificate, mode, expected to connect)
    let cases: Vec<(&str, &Leaf, VerificationMode, bool)> = vec![
        ("good", &good, Full, true),
        ("good", &good, Strict, true),
        ("good", &good, Certificate, true),
        ("good", &good, None, true),
        ("wrong name", &wrong_name, Full, false),
        ("wrong name", &wrong_name, Strict, false),
        ("wrong name", &wrong_name, Certificate, true),
        ("wrong name", &wrong_name, None, true),
        ("wrong CA", &wrong_ca, Full, false),
        ("wrong CA", &wrong_ca, Strict, false),
        ("wrong CA", &wrong_ca, Certificate, false),
        ("wrong CA", &wrong_ca, None, true),
        ("expired", &expired, Full, false),
        ("expired", &expired, Certificate, false),
        ("expired", &expired, None, true),
    ];
    for (what, leaf, mode, ok) in cases {
        // The server refuses to load its own expired certificate; serve it through a
        // config built directly so the client's check is what is exercised.
        let result = if what == "expired" {
            let server = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![leaf.cert_der.clone()],
                rustls_pki_types::PrivateKeyDer::Pkcs8(leaf.key_pkcs8_der.clone().into()),
            )
            .unwrap();
            let mut c = client_ssl(&ca, Option::None);
            c.verification_mode = mode;
            let s = settings(&c);
            handshake(
                std::sync::Arc::new(server),
                s.client_config(Alpn::None).unwrap(),
                name(&s, "localhost"),
            )
            .await
            .client
            .map(|_| ())
        } else {
            connect_with_mode(leaf, &ca, mode, "localhost").await
        };
        assert_eq!(
            result.is_ok(),
            ok,
            "{what} certificate with verification_mode {mode:?}: {result:?}"
        );
        if let Err(e) = &result {
            let expect = match what {
                "wrong name" => "not valid for name",
                "wrong CA" => "UnknownIssuer",
                _ => "expired",
            };
            assert!(e.contains(expect), "{what}/{mode:?}: {e}");
        }
    }
}

#[tokio::test]
async fn server_name_override_is_verified_instead_of_the_host() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("server", &["logstash.internal"]);
    let files = Files::new();
    let server = settings(&server_ssl(&files, &leaf, None))
        .server_config()
        .unwrap();
    let mut c = client_ssl(&ca, None);
    c.server_name = Some("logstash.internal".to_string());
    let s = settings(&c);
    let out = handshake(
        server.clone(),
        s.client_config(Alpn::None).unwrap(),
        name(&s, "127.0.0.1"),
    )
    .await;
    out.client.expect("override name matches the certificate");
    let plain = settings(&client_ssl(&ca, None));
    let out = handshake(
        server,
        plain.client_config(Alpn::None).unwrap(),
        name(&plain, "127.0.0.1"),
    )
    .await;
    assert!(out.client.unwrap_err().contains("not valid for name"));
}

#[tokio::test]
async fn pins_match_the_anchor_or_leaf_and_refuse_otherwise() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("server", &["localhost"]);
    let files = Files::new();
    let server = settings(&server_ssl(&files, &leaf, None))
        .server_config()
        .unwrap();
    for (what, pin, ok) in [
        (
            "CA (not sent by the server)",
            Pin::of(ca.cert_der.as_ref()).text,
            true,
        ),
        ("leaf", Pin::of(leaf.cert_der.as_ref()).text, true),
        ("unrelated", Pin::of(b"something else").text, false),
    ] {
        for mode in [VerificationMode::Full, VerificationMode::None] {
            let mut c = client_ssl(&ca, None);
            c.ca_sha256 = vec![pin.clone()];
            c.verification_mode = mode;
            let s = settings(&c);
            let out = handshake(
                server.clone(),
                s.client_config(Alpn::None).unwrap(),
                name(&s, "localhost"),
            )
            .await;
            assert_eq!(
                out.client.is_ok(),
                ok,
                "pin of {what}, {mode:?}: {:?}",
                out.client.err()
            );
            if let Err(e) = out.client {
                assert!(e.contains("ssl.ca_sha256"), "{e}");
            }
        }
    }
}

#[tokio::test]
async fn trusted_fingerprint_makes_a_presented_ca_trusted() {
    let ca = Ca::new("Fingerprinted CA");
    let leaf = ca.leaf("server", &["localhost"]);
    let files = Files::new();
    // The server sends its CA along, as Elasticsearch does with its http CA.
    let mut with_chain = server_ssl(&files, &leaf, None);
    with_chain.certificate =
        Some(files.write("chain.crt", &format!("{}{}", leaf.cert_pem, ca.cert_pem)));
    let server = settings(&with_chain).server_config().unwrap();
    let fingerprint = pinning::to_hex(&pinning::sha256(ca.cert_der.as_ref()));
    let c = SslConfig {
        ca_trusted_fingerprint: Some(fingerprint),
        ..SslConfig::default()
    };
    let s = settings(&c);
    assert!(s.is_enabled());
    let out = handshake(
        server,
        s.client_config(Alpn::None).unwrap(),
        name(&s, "localhost"),
    )
    .await;
    let report = out.client.expect("fingerprinted CA becomes trusted");
    assert_eq!(report.chain.len(), 2);

    // Without the CA in the chain, the fingerprint matches nothing.
    let server = settings(&server_ssl(&files, &leaf, None))
        .server_config()
        .unwrap();
    let out = handshake(
        server,
        s.client_config(Alpn::None).unwrap(),
        name(&s, "localhost"),
    )
    .await;
    let err = out.client.unwrap_err();
    assert!(err.contains("ssl.ca_trusted_fingerprint"), "{err}");
}

#[tokio::test]
async fn encrypted_key_with_right_and_wrong_passphrase() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("client", &["client"]);
    let files = Files::new();
    let key_path = files.write("client.key", &leaf.encrypted_key_pem("open sesame"));
    let base = SslConfig {
        certificate_authorities: vec![ca.cert_pem.clone()],
        certificate: Some(files.write("client.crt", &leaf.cert_pem)),
        key: Some(Secret::new(key_path.clone())),
        ..SslConfig::default()
    };
    let err = settings(&base).client_config(Alpn::None).unwrap_err();
    assert!(err.to_string().contains("ssl.key_passphrase"), "{err}");
    assert!(err.to_string().contains(&key_path), "{err}");

    let mut right = base.clone();
    right.key_passphrase = Some(Secret::new("open sesame"));
    settings(&right)
        .client_config(Alpn::None)
        .expect("right passphrase");

    let mut from_file = base.clone();
    from_file.key_passphrase_path = Some(files.path("pass.txt"));
    files.write("pass.txt", "open sesame\n");
    settings(&from_file)
        .client_config(Alpn::None)
        .expect("passphrase file");

    let mut wrong = base.clone();
    wrong.key_passphrase = Some(Secret::new("not it"));
    let err = settings(&wrong).client_config(Alpn::None).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cannot decrypt") && msg.contains(&key_path),
        "{msg}"
    );
    assert!(!msg.contains("not it"), "{msg}");

    // And the decrypted key really works in a handshake.
    let server_leaf = ca.leaf("server", &["localhost"]);
    let server = settings(&server_ssl(&files, &server_leaf, Some(&ca)))
        .server_config()
        .unwrap();
    let s = settings(&right);
    let out = handshake(
        server,
        s.client_config(Alpn::None).unwrap(),
        name(&s, "localhost"),
    )
    .await;
    out.client.expect("handshake with decrypted key");
}

#[tokio::test]
async fn own_expired_or_not_yet_valid_certificate_is_refused_with_dates() {
    let ca = Ca::new("Test CA");
    let now = OffsetDateTime::now_utc();
    for (what, nb, na, expect) in [
        (
            "expired",
            now - time::Duration::days(30),
            now - time::Duration::days(2),
            "expired",
        ),
        (
            "future",
            now + time::Duration::days(2),
            now + time::Duration::days(30),
            "not valid yet",
        ),
    ] {
        let leaf = ca.leaf_valid("client", &["client"], nb, na);
        let s = settings(&client_ssl(&ca, Some(&leaf)));
        let err = s.client_config(Alpn::None).unwrap_err();
        assert!(err.is_validity(), "{what}: {err}");
        let msg = err.to_string();
        assert!(msg.contains(expect), "{msg}");
        let nb_text = skidder::credentials::expiry::format_time(nb.replace_nanosecond(0).unwrap());
        let na_text = skidder::credentials::expiry::format_time(na.replace_nanosecond(0).unwrap());
        assert!(
            msg.contains(&nb_text) && msg.contains(&na_text),
            "{msg} lacks {nb_text} / {na_text}"
        );
        assert!(TlsSource::client(s, Alpn::None).is_err());
    }
}

#[tokio::test]
async fn tls_1_1_and_unknown_ciphers_are_config_errors() {
    let mut c = SslConfig {
        supported_protocols: vec!["TLSv1.1".to_string()],
        ..SslConfig::default()
    };
    let msg = TlsSettings::from_config(&c).unwrap_err().to_string();
    assert!(
        msg.contains("TLSv1.1 only: not supported (insecure)"),
        "{msg}"
    );
    // Elastic's reference list: TLSv1.1 is dropped (WARNed at start), the rest used.
    c.supported_protocols = ["TLSv1.1", "TLSv1.2", "TLSv1.3"].map(String::from).to_vec();
    assert!(TlsSettings::from_config(&c).is_ok());
    c.supported_protocols = vec!["TLSv1.2".to_string()];
    c.cipher_suites = vec!["ECDHE-ECDSA-AES-128-GCM-SHA256".to_string()];
    let ca = Ca::new("Test CA");
    c.certificate_authorities = vec![ca.cert_pem.clone()];
    let s = settings(&c);
    let leaf = ca.leaf("server", &["localhost"]);
    let files = Files::new();
    let server = settings(&server_ssl(&files, &leaf, None))
        .server_config()
        .unwrap();
    let out = handshake(
        server,
        s.client_config(Alpn::Http11).unwrap(),
        name(&s, "localhost"),
    )
    .await;
    let report = out.client.unwrap();
    assert_eq!(report.version, "TLSv1.2");
    assert_eq!(
        report.cipher_suite,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256"
    );
}

#[tokio::test]
async fn replaced_certificate_is_used_by_the_next_connection() {
    let ca = Ca::new("Test CA");
    let first = ca.leaf("server-one", &["localhost"]);
    let second = ca.leaf("server-two", &["localhost"]);
    let files = Files::new();
    let source = TlsSource::server(settings(&server_ssl(&files, &first, None))).unwrap();
    let c = settings(&client_ssl(&ca, None));
    let client = c.client_config(Alpn::None).unwrap();

    let out = handshake(
        source.server_config().unwrap(),
        client.clone(),
        name(&c, "localhost"),
    )
    .await;
    assert!(out.client.unwrap().chain[0].subject.contains("server-one"));

    files.write("server.crt", &second.cert_pem);
    files.write("server.key", &second.key_pem);
    let out = handshake(
        source.server_config().unwrap(),
        client.clone(),
        name(&c, "localhost"),
    )
    .await;
    assert!(out.client.unwrap().chain[0].subject.contains("server-two"));

    // A broken replacement keeps the last good material.
    files.write("server.key", "not a key");
    let out = handshake(
        source.server_config().unwrap(),
        client,
        name(&c, "localhost"),
    )
    .await;
    assert!(out.client.unwrap().chain[0].subject.contains("server-two"));
}

#[tokio::test]
async fn replaced_client_certificate_is_presented_on_the_next_connection() {
    let ca = Ca::new("Test CA");
    let server_leaf = ca.leaf("server", &["localhost"]);
    let one = ca.leaf("client-one", &["client"]);
    let two = ca.leaf("client-two", &["client"]);
    let files = Files::new();
    let server = settings(&server_ssl(&files, &server_leaf, Some(&ca)))
        .server_config()
        .unwrap();
    let c = SslConfig {
        certificate_authorities: vec![ca.cert_pem.clone()],
        certificate: Some(files.write("client.crt", &one.cert_pem)),
        key: Some(Secret::new(files.write("client.key", &one.key_pem))),
        ..SslConfig::default()
    };
    let s = settings(&c);
    let source = TlsSource::client(s.clone(), Alpn::None).unwrap();
    let out = handshake(
        server.clone(),
        source.client_config().unwrap(),
        name(&s, "localhost"),
    )
    .await;
    assert!(subject_of(&out.server.unwrap().unwrap()[0]).contains("client-one"));
    files.write("client.crt", &two.cert_pem);
    files.write("client.key", &two.key_pem);
    let out = handshake(
        server,
        source.client_config().unwrap(),
        name(&s, "localhost"),
    )
    .await;
    assert!(subject_of(&out.server.unwrap().unwrap()[0]).contains("client-two"));
}

#[tokio::test]
async fn handshake_report_names_the_matching_pin() {
    let ca = Ca::new("Test CA");
    let leaf = ca.leaf("server", &["localhost"]);
    let files = Files::new();
    let server = settings(&server_ssl(&files, &leaf, None))
        .server_config()
        .unwrap();
    let mut c = client_ssl(&ca, None);
    let leaf_pin = Pin::of(leaf.cert_der.as_ref()).text;
    c.ca_sha256 = vec![Pin::of(b"x").text, leaf_pin.clone()];
    let s = settings(&c);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accept = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut tls = tokio_rustls::TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .unwrap();
        tokio::io::AsyncWriteExt::write_all(&mut tls, b"x")
            .await
            .unwrap();
    });
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(s.client_config(Alpn::None).unwrap())
        .connect(name(&s, "localhost"), tcp)
        .await
        .unwrap();
    let mut b = [0u8; 1];
    tokio::time::timeout(STEP, tokio::io::AsyncReadExt::read_exact(&mut tls, &mut b))
        .await
        .expect("server wrote within 10s")
        .unwrap();
    let report = describe_handshake(tls.get_ref().1, s.pins());
    assert_eq!(report.matched_pin.as_deref(), Some(leaf_pin.as_str()));
    let text = report.to_string();
    assert!(
        text.contains("pin matched") && text.contains("CN=Test CA"),
        "{text}"
    );
    accept.await.unwrap();
}
