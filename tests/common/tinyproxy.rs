//! Debian's tinyproxy as an HTTP proxy for tests: forwards plain HTTP requests (adding its
//! `Via: 1.1 tinyproxy` header) and tunnels `CONNECT`. Each proxy is a child
//! `tinyproxy -d -c conf` with its own config and log in a temp dir, killed on drop.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const START_WAIT: Duration = Duration::from_secs(15);
const PORT_ATTEMPTS: usize = 3;

/// The tinyproxy binary, or `None` after printing an explicit skip when
/// `SKIDDER_SKIP_TINYPROXY=1`. Panics with the install command otherwise.
pub fn require() -> Option<PathBuf> {
    for p in ["/usr/bin/tinyproxy", "/usr/sbin/tinyproxy"] {
        if std::path::Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    if std::env::var("SKIDDER_SKIP_TINYPROXY").as_deref() == Ok("1") {
        eprintln!("SKIPPED: tinyproxy is not installed and SKIDDER_SKIP_TINYPROXY=1");
        return None;
    }
    panic!(
        "tinyproxy is not installed: run `bash .ci/peers/tinyproxy.sh` (Debian's tinyproxy), \
         or set SKIDDER_SKIP_TINYPROXY=1 to skip this test explicitly"
    );
}

/// A running proxy on 127.0.0.1.
pub struct Proxy {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Proxy {
    /// Starts a proxy; with `auth`, clients must send `Proxy-Authorization: Basic` for it
    /// (tinyproxy answers 407 otherwise).
    pub fn start(bin: &std::path::Path, auth: Option<(&str, &str)>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mut last = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let port = TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let log = dir.path().join("tinyproxy.log");
            let mut conf = format!(
                "Port {port}\nListen 127.0.0.1\nTimeout 30\nLogFile \"{}\"\nLogLevel Info\n\
                 MaxClients 50\nAllow 127.0.0.1\n",
                log.display()
            );
            if let Some((user, pass)) = auth {
                conf.push_str(&format!("BasicAuth {user} {pass}\n"));
            }
            let path = dir.path().join("tinyproxy.conf");
            std::fs::write(&path, conf).unwrap();
            let mut child = Command::new(bin)
                .arg("-d")
                .arg("-c")
                .arg(&path)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            let outcome = crate::common::poll(START_WAIT, || {
                if let Some(status) = child.try_wait().unwrap() {
                    return Some(Err(status));
                }
                TcpStream::connect(("127.0.0.1", port))
                    .is_ok()
                    .then_some(Ok(()))
            });
            match outcome {
                Some(Ok(())) => return Self { port, dir, child },
                Some(Err(status)) => {
                    last = format!(
                        "tinyproxy exited with {status}; log:\n{}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tinyproxy did not open 127.0.0.1:{port} within {START_WAIT:?}");
                }
            }
        }
        panic!("tinyproxy did not start after {PORT_ATTEMPTS} attempts: {last}");
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("tinyproxy.log")).unwrap_or_default()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
