//! Test PKI made with rcgen at test time, and a loopback TLS harness over tokio-rustls.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName};
use skidder::config::SslConfig;
use skidder::credentials::{describe_handshake, HandshakeReport, Secret};
use time::OffsetDateTime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Bound on every network step of a test: a hang fails with a message instead of blocking.
pub const STEP: Duration = Duration::from_secs(10);

/// A certificate authority that can sign leaves.
pub struct Ca {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate and its key.
pub struct Leaf {
    pub cert_pem: String,
    pub cert_der: CertificateDer<'static>,
    pub key_pem: String,
    pub key_pkcs8_der: Vec<u8>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).unwrap();
        Self {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf valid from yesterday for a year.
    pub fn leaf(&self, cn: &str, sans: &[&str]) -> Leaf {
        let now = OffsetDateTime::now_utc();
        self.leaf_valid(
            cn,
            sans,
            now - time::Duration::days(1),
            now + time::Duration::days(365),
        )
    }

    pub fn leaf_valid(
        &self,
        cn: &str,
        sans: &[&str],
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.not_before = not_before;
        params.not_after = not_after;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key_pem: key.serialize_pem(),
            key_pkcs8_der: key.serialize_der(),
        }
    }
}

impl Leaf {
    /// The key as encrypted PKCS#8 PEM (PBES2, PBKDF2-SHA256, AES-256-CBC).
    pub fn encrypted_key_pem(&self, passphrase: &str) -> String {
        use pkcs8::der::pem::LineEnding;
        let info = pkcs8::PrivateKeyInfo::try_from(self.key_pkcs8_der.as_slice()).unwrap();
        let params = pkcs8::pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(
            2048,
            b"0123456789abcdef",
            &[7u8; 16],
        )
        .unwrap();
        let doc = info.encrypt_with_params(params, passphrase).unwrap();
        doc.to_pem("ENCRYPTED PRIVATE KEY", LineEnding::LF)
            .unwrap()
            .to_string()
    }
}

/// The usual mutual-TLS setup of the peer tests, written out: a CA, a server certificate
/// for `localhost`/`127.0.0.1` and a client certificate, as file paths (config values).
pub struct MutualTlsFiles {
    /// Holds the files; dropping it removes them.
    pub files: Files,
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
    pub client_cert: String,
    pub client_key: String,
}

impl MutualTlsFiles {
    /// `skidder receive`'s flags for a listener that serves the server certificate and
    /// requires a client certificate from this CA.
    pub fn receive_args(&self) -> Vec<&str> {
        vec![
            "--tls-cert",
            &self.server_cert,
            "--tls-key",
            &self.server_key,
            "--tls-ca",
            &self.ca,
            "--require-client-cert",
        ]
    }

    /// A fresh CA named `ca_name` issuing the server and a client named `client_cn`.
    pub fn new(ca_name: &str, client_cn: &str) -> Self {
        let ca = Ca::new(ca_name);
        let server = ca.leaf("localhost", &["localhost", "127.0.0.1"]);
        let client = ca.leaf(client_cn, &[client_cn]);
        let files = Files::new();
        Self {
            ca: files.write("ca.crt", &ca.cert_pem),
            server_cert: files.write("server.crt", &server.cert_pem),
            server_key: files.write("server.key", &server.key_pem),
            client_cert: files.write("client.crt", &client.cert_pem),
            client_key: files.write("client.key", &client.key_pem),
            files,
        }
    }
}

/// A directory for PEM files.
pub struct Files {
    pub dir: tempfile::TempDir,
}

impl Files {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
        }
    }

    /// Writes `content` to `name` (replacing it through a rename, as tools renewing
    /// certificates do) and returns the path as a config value.
    pub fn write(&self, name: &str, content: &str) -> String {
        let path = self.dir.path().join(name);
        let tmp = self.dir.path().join(format!("{name}.tmp"));
        std::fs::write(&tmp, content).unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        path.display().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// An `ssl` section for a server with `leaf`, checking client certificates against `client_ca`.
pub fn server_ssl(files: &Files, leaf: &Leaf, client_ca: Option<&Ca>) -> SslConfig {
    let mut c = SslConfig {
        certificate: Some(files.write("server.crt", &leaf.cert_pem)),
        key: Some(Secret::new(files.write("server.key", &leaf.key_pem))),
        ..SslConfig::default()
    };
    if let Some(ca) = client_ca {
        c.certificate_authorities = vec![files.write("client-ca.crt", &ca.cert_pem)];
    }
    c
}

/// An `ssl` section for a client trusting `ca` (inline PEM), with an optional client leaf.
pub fn client_ssl(ca: &Ca, leaf: Option<&Leaf>) -> SslConfig {
    SslConfig {
        certificate_authorities: vec![ca.cert_pem.clone()],
        certificate: leaf.map(|l| l.cert_pem.clone()),
        key: leaf.map(|l| Secret::new(l.key_pem.clone())),
        ..SslConfig::default()
    }
}

/// What both ends saw.
pub struct Outcome {
    /// The client's view (Err: the handshake or first read failed, with rustls' reason).
    pub client: Result<HandshakeReport, String>,
    /// The certificates the server saw from the client (Err: the server's handshake failed).
    pub server: Result<Option<Vec<CertificateDer<'static>>>, String>,
}

/// One loopback TLS connection: the server accepts once, writes `ok` and reads one byte;
/// the client connects with `name` as SNI/verified name and reads `ok`.
pub async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: ServerName<'static>,
) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.map_err(|e| e.to_string())?;
        let mut tls = TlsAcceptor::from(server)
            .accept(tcp)
            .await
            .map_err(|e| e.to_string())?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|c| c.iter().map(|c| c.clone().into_owned()).collect());
        tls.write_all(b"ok").await.map_err(|e| e.to_string())?;
        tls.flush().await.map_err(|e| e.to_string())?;
        let mut byte = [0u8; 1];
        // The client closes after reading; a clean EOF or one byte both mean success.
        let _ = tls.read(&mut byte).await;
        Ok::<_, String>(peer)
    });
    let client_result = async {
        let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let mut tls = TlsConnector::from(client)
            .connect(name, tcp)
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = [0u8; 2];
        tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
        assert_eq!(&buf, b"ok");
        let report = describe_handshake(tls.get_ref().1, &[]);
        tls.shutdown().await.ok();
        Ok::<_, String>(report)
    };
    let client = tokio::time::timeout(STEP, client_result)
        .await
        .expect("client handshake did not finish within 10s");
    let server = tokio::time::timeout(STEP, server_task)
        .await
        .expect("server handshake did not finish within 10s")
        .expect("server task panicked");
    Outcome { client, server }
}

/// Subject CN of a DER certificate, via the handshake report's parser.
pub fn subject_of(der: &CertificateDer<'_>) -> String {
    let (_, cert) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    cert.subject().to_string()
}

pub fn path_str(p: &Path) -> String {
    p.display().to_string()
}
