//! A minimal SOCKS5 proxy for tests (RFC 1928 CONNECT, RFC 1929 user/password), on a
//! thread with its own runtime. It records the targets it was asked for.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A running proxy.
pub struct Proxy {
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    /// Targets asked for, as `host:port` (a name when the client sent one).
    pub targets: Arc<Mutex<Vec<String>>>,
}

impl Proxy {
    /// Starts a proxy; with `auth`, only that user and password are accepted.
    pub fn start(auth: Option<(&str, &str)>) -> Self {
        let auth = auth.map(|(u, p)| (u.to_string(), p.to_string()));
        let targets = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let seen = Arc::clone(&targets);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(listener.local_addr().unwrap()).unwrap();
                loop {
                    let Ok((client, _)) = listener.accept().await else {
                        return;
                    };
                    let auth = auth.clone();
                    let seen = Arc::clone(&seen);
                    tokio::spawn(async move {
                        let _ = serve(client, auth, seen).await;
                    });
                }
            });
        });
        let addr = rx.recv().unwrap();
        Self { addr, targets }
    }
}

async fn serve(
    mut c: TcpStream,
    auth: Option<(String, String)>,
    seen: Arc<Mutex<Vec<String>>>,
) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    c.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    c.read_exact(&mut methods).await?;
    let want = if auth.is_some() { 2 } else { 0 };
    if head[0] != 5 || !methods.contains(&want) {
        c.write_all(&[5, 0xff]).await?;
        return Ok(());
    }
    c.write_all(&[5, want]).await?;
    if let Some((user, pass)) = auth {
        let mut v = [0u8; 2];
        c.read_exact(&mut v).await?;
        let mut u = vec![0u8; v[1] as usize];
        c.read_exact(&mut u).await?;
        let mut pl = [0u8; 1];
        c.read_exact(&mut pl).await?;
        let mut p = vec![0u8; pl[0] as usize];
        c.read_exact(&mut p).await?;
        let ok = u == user.as_bytes() && p == pass.as_bytes();
        c.write_all(&[1, if ok { 0 } else { 1 }]).await?;
        if !ok {
            return Ok(());
        }
    }
    let mut req = [0u8; 4];
    c.read_exact(&mut req).await?;
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            c.read_exact(&mut a).await?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        3 => {
            let mut l = [0u8; 1];
            c.read_exact(&mut l).await?;
            let mut n = vec![0u8; l[0] as usize];
            c.read_exact(&mut n).await?;
            String::from_utf8_lossy(&n).into_owned()
        }
        _ => {
            c.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
            return Ok(());
        }
    };
    let mut port = [0u8; 2];
    c.read_exact(&mut port).await?;
    let port = u16::from_be_bytes(port);
    seen.lock().unwrap().push(format!("{host}:{port}"));
    let Ok(mut upstream) = TcpStream::connect((host.as_str(), port)).await else {
        c.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    c.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0]).await?;
    tokio::io::copy_bidirectional(&mut c, &mut upstream).await?;
    Ok(())
}
