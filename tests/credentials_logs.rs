//! What the credential layer itself logs: a certificate close to expiry is warned about
//! once. (That no secret reaches a log line is proven end to end, by running the binary
//! with canaries, in tests/secrets.rs.)

mod credentials_pki;

use std::io::Write;
use std::sync::{Arc, Mutex};

use credentials_pki::*;
use skidder::config::SslConfig;
use skidder::credentials::{Alpn, Secret, TlsSettings};

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
