//! A loopback TCP relay that counts the bytes sender → server: the "wire" bytes of a sender
//! (TLS records included), measured the same way for every sender.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::BenchError;

/// Running relay; stops accepting when dropped (open connections finish by themselves).
#[derive(Debug)]
pub struct Relay {
    /// Where senders connect.
    pub addr: SocketAddr,
    up: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl Relay {
    /// Listens on 127.0.0.1:0 and forwards every connection to `upstream`.
    ///
    /// # Errors
    /// [`BenchError::Io`] if it cannot listen.
    pub fn start(upstream: SocketAddr) -> Result<Self, BenchError> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|source| BenchError::Io {
            what: "relay: binding 127.0.0.1:0".into(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| BenchError::Io {
            what: "relay: local address".into(),
            source,
        })?;
        let up = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (u, s) = (up.clone(), stop.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if s.load(Ordering::Acquire) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(upstream) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                pipe(&client, &server, u.clone());
                // ACKs flowing back are not counted: only the sender's bytes matter.
                pipe(&server, &client, Arc::new(AtomicU64::new(0)));
            }
        });
        Ok(Self { addr, up, stop })
    }

    /// Bytes sender → server so far.
    pub fn up_bytes(&self) -> u64 {
        self.up.load(Ordering::Acquire)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn pipe(from: &TcpStream, to: &TcpStream, count: Arc<AtomicU64>) {
    let (Ok(mut from), Ok(mut to)) = (from.try_clone(), to.try_clone()) else {
        return;
    };
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    count.fetch_add(n as u64, Ordering::AcqRel);
                }
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_forwards_and_counts_both_ways() {
        let server = TcpListener::bind("127.0.0.1:0").unwrap();
        let upstream = server.local_addr().unwrap();
        let echo = std::thread::spawn(move || {
            let (mut s, _) = server.accept().unwrap();
            let mut got = Vec::new();
            s.read_to_end(&mut got).unwrap();
            s.write_all(&got[..3]).unwrap();
            got.len()
        });
        let relay = Relay::start(upstream).unwrap();
        let mut c = TcpStream::connect(relay.addr).unwrap();
        c.write_all(&[7u8; 100_000]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        c.read_to_end(&mut back).unwrap();
        assert_eq!(echo.join().unwrap(), 100_000);
        assert_eq!(back, vec![7u8; 3]);
        assert_eq!(relay.up_bytes(), 100_000);
    }
}
