//! Debian's nginx as a TLS front for tests: terminates TLS (OpenSSL, not rustls), requires a
//! client certificate signed by a given CA, and proxies plain HTTP to an upstream URL.
//!
//! Each front is a child `nginx -c conf -p dir` with `daemon off`, its own config, pid file,
//! logs and temp paths in a temp dir; it is killed when the front is dropped, also when a test
//! panics. The system service is never touched.
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Bound on nginx opening its port.
const START_WAIT: Duration = Duration::from_secs(15);
/// Attempts when another process takes the chosen port between picking and binding it.
const PORT_ATTEMPTS: usize = 3;

/// The nginx binary: on PATH, else Debian's location (/usr/sbin is not on every PATH).
pub fn binary() -> Option<PathBuf> {
    let on_path = Command::new("sh")
        .args(["-c", "command -v nginx"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    on_path.or_else(|| {
        let debian = PathBuf::from("/usr/sbin/nginx");
        debian.exists().then_some(debian)
    })
}

/// The nginx binary, or `None` after printing an explicit skip when `SKIDDER_SKIP_NGINX=1`.
/// Panics with the install command otherwise: CI installs nginx, so a missing one is a failure.
pub fn require() -> Option<PathBuf> {
    if let Some(bin) = binary() {
        return Some(bin);
    }
    if std::env::var("SKIDDER_SKIP_NGINX").as_deref() == Ok("1") {
        eprintln!("SKIPPED: nginx is not installed and SKIDDER_SKIP_NGINX=1");
        return None;
    }
    panic!(
        "nginx is not installed: run `bash .ci/peers/nginx.sh` (Debian's nginx), \
         or set SKIDDER_SKIP_NGINX=1 to skip this test explicitly"
    );
}

/// PEM material of the front.
pub struct FrontPki<'a> {
    /// The server chain the front presents.
    pub cert_pem: &'a str,
    /// Its key.
    pub key_pem: &'a str,
    /// The CA that client certificates must chain to.
    pub client_ca_pem: &'a str,
}

/// A running nginx front.
pub struct Front {
    /// The port it listens on (127.0.0.1, and ::1 where loopback IPv6 exists).
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl Front {
    /// Starts a front proxying to `upstream` (e.g. `http://127.0.0.1:9200`).
    pub fn start(bin: &Path, upstream: &str, pki: &FrontPki<'_>) -> Self {
        Self::start_with(bin, upstream, pki, "TLSv1.2 TLSv1.3")
    }

    /// As [`Front::start`], offering only `protocols` (nginx's `ssl_protocols`, e.g.
    /// `TLSv1.2`).
    pub fn start_with(bin: &Path, upstream: &str, pki: &FrontPki<'_>, protocols: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("server.crt"), pki.cert_pem).unwrap();
        std::fs::write(d.join("server.key"), pki.key_pem).unwrap();
        std::fs::write(d.join("client-ca.crt"), pki.client_ca_pem).unwrap();
        // Workers may run as an unprivileged user (when the test runs as root); they need to
        // reach the temp paths.
        let tmp = d.join("tmp");
        std::fs::create_dir(&tmp).unwrap();
        set_mode(d, 0o755);
        set_mode(&tmp, 0o777);
        let mut last_error = String::new();
        for _ in 0..PORT_ATTEMPTS {
            let (port, v6) = free_port();
            let conf = d.join("nginx.conf");
            std::fs::write(&conf, config(d, port, v6, upstream, protocols)).unwrap();
            let error_log = d.join("error.log");
            let mut child = Command::new(bin)
                .arg("-e")
                .arg(&error_log)
                .arg("-p")
                .arg(d)
                .arg("-c")
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {}: {e}", bin.display()));
            // Ready (Ok), exited (Err with its status), or neither within START_WAIT (None).
            // The port must answer *and* be ours: nginx writes its pid file only after it
            // bound its sockets, so a parallel test's front that took the same port first
            // (this one then exits with "Address already in use") is not mistaken for it.
            let pid_file = d.join("nginx.pid");
            let ours = child.id().to_string();
            let outcome = crate::common::poll(START_WAIT, || {
                if let Some(status) = child.try_wait().unwrap() {
                    return Some(Err(status));
                }
                let pid = std::fs::read_to_string(&pid_file).unwrap_or_default();
                if pid.trim() == ours && TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Ok(()));
                }
                None
            });
            match outcome {
                Some(Ok(())) => return Self { port, dir, child },
                Some(Err(status)) => {
                    let mut stderr = String::new();
                    if let Some(mut s) = child.stderr.take() {
                        let _ = std::io::Read::read_to_string(&mut s, &mut stderr);
                    }
                    last_error = format!(
                        "nginx exited with {status}; stderr:\n{stderr}\nerror.log:\n{}",
                        std::fs::read_to_string(&error_log).unwrap_or_default()
                    );
                }
                None => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "nginx did not open 127.0.0.1:{port} within {START_WAIT:?}; error.log:\n{}",
                        std::fs::read_to_string(&error_log).unwrap_or_default()
                    );
                }
            }
            if !last_error.contains("Address already in use") {
                break;
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    /// nginx's error log so far (for failure messages).
    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("error.log")).unwrap_or_default()
    }

    /// nginx's access log so far, one line per request:
    /// `METHOD URI PROTO STATUS TLS-VERSION verify=SUCCESS|NONE|FAILED:reason dn=CLIENT-DN`.
    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("access.log")).unwrap_or_default()
    }
}

impl Drop for Front {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers and exits (SIGKILL would orphan the workers).
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stderr(Stdio::null())
            .status();
        let child = &mut self.child;
        if crate::common::poll(Duration::from_secs(5), || child.try_wait().ok().flatten()).is_some()
        {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A port free on 127.0.0.1 right now, and whether ::1 can take it too.
fn free_port() -> (u16, bool) {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = v4.local_addr().unwrap().port();
    let v6 = TcpListener::bind(("::1", port)).is_ok();
    (port, v6)
}

/// The whole nginx.conf: every path inside `dir`, so nothing of the system install is used.
fn config(dir: &Path, port: u16, v6: bool, upstream: &str, protocols: &str) -> String {
    let d = dir.display();
    let listen_v6 = if v6 {
        format!("        listen [::1]:{port} ssl;\n")
    } else {
        String::new()
    };
    format!(
        "daemon off;
worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log info;
events {{ worker_connections 64; }}
http {{
    log_format front '$request $status $ssl_protocol verify=$ssl_client_verify dn=$ssl_client_s_dn';
    access_log {d}/access.log front;
    client_body_temp_path {d}/tmp/body;
    proxy_temp_path {d}/tmp/proxy;
    fastcgi_temp_path {d}/tmp/fastcgi;
    uwsgi_temp_path {d}/tmp/uwsgi;
    scgi_temp_path {d}/tmp/scgi;
    client_max_body_size 0;
    proxy_request_buffering off;
    proxy_buffering off;
    server {{
        listen 127.0.0.1:{port} ssl;
{listen_v6}        ssl_protocols {protocols};
        ssl_certificate {d}/server.crt;
        ssl_certificate_key {d}/server.key;
        ssl_client_certificate {d}/client-ca.crt;
        ssl_verify_client on;
        location / {{
            proxy_pass {upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection \"\";
        }}
    }}
}}
"
    )
}
