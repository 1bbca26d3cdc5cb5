//! A local hyper server (optionally over TLS) that records each request and answers from
//! a script, standing in for Elasticsearch.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Read as _;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// One request as the server saw it, body decompressed.
#[derive(Debug, Clone)]
pub struct Seen {
    /// `GET`, `POST`, `DELETE`, ...
    pub method: String,
    pub path_and_query: String,
    pub headers: BTreeMap<String, String>,
    pub gzip: bool,
    pub body: String,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl Seen {
    /// The NDJSON lines of the body.
    pub fn lines(&self) -> Vec<serde_json::Value> {
        self.body
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    /// The documents (every second line).
    pub fn docs(&self) -> Vec<serde_json::Value> {
        self.lines().into_iter().skip(1).step_by(2).collect()
    }
}

/// A bulk reply (200) indexing every item of the request, each with status 201.
pub fn all_indexed(seen: &Seen) -> String {
    let items: Vec<serde_json::Value> = seen
        .lines()
        .chunks(2)
        .map(|pair| {
            let op = pair[0]
                .as_object()
                .and_then(|o| o.keys().next().cloned())
                .unwrap_or_else(|| "index".to_string());
            serde_json::json!({ op: { "status": 201 } })
        })
        .collect();
    serde_json::json!({ "took": 1, "errors": false, "items": items }).to_string()
}

pub type Script = dyn Fn(usize, &Seen) -> (u16, String) + Send + Sync;

/// A recording HTTP server; `script(request_number, request)` gives status and body.
pub struct Server {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(
        script: impl Fn(usize, &Seen) -> (u16, String) + Send + Sync + 'static,
    ) -> Self {
        Self::start_with(None, Arc::new(script)).await
    }

    pub async fn start_with(tls: Option<tokio_rustls::TlsAcceptor>, script: Arc<Script>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let seen2 = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen2.clone();
                let script = script.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                        let seen = seen.clone();
                        let script = script.clone();
                        async move {
                            let method = req.method().to_string();
                            let path_and_query = req
                                .uri()
                                .path_and_query()
                                .map(|p| p.to_string())
                                .unwrap_or_default();
                            let headers: BTreeMap<String, String> = req
                                .headers()
                                .iter()
                                .map(|(k, v)| {
                                    (k.as_str().to_string(), v.to_str().unwrap().to_string())
                                })
                                .collect();
                            let gzip =
                                headers.get("content-encoding").map(String::as_str) == Some("gzip");
                            let raw = req.into_body().collect().await?.to_bytes();
                            let body = if gzip {
                                let mut s = String::new();
                                flate2::read::GzDecoder::new(&raw[..])
                                    .read_to_string(&mut s)
                                    .unwrap();
                                s
                            } else {
                                String::from_utf8(raw.to_vec()).unwrap()
                            };
                            let rec = Seen {
                                method,
                                path_and_query,
                                headers,
                                gzip,
                                body,
                                at: std::time::Instant::now(),
                            };
                            let n = {
                                let mut all = seen.lock().unwrap();
                                all.push(rec.clone());
                                all.len() - 1
                            };
                            let (status, body) = script(n, &rec);
                            let mut resp = hyper::Response::new(Full::new(Bytes::from(body)));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, hyper::Error>(resp)
                        }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(tcp).await {
                                let _ = builder
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            }
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self { addr, seen, task }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn host(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}
