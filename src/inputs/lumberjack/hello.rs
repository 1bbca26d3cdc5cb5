//! What a client whose TLS handshake failed had offered, from the first bytes it sent.
//!
//! rustls refuses a client that offers only TLS 1.0/1.1 with whatever check fails first
//! (such clients send no `signature_algorithms`, so usually that one), and plaintext with
//! a record-layer parse error; neither names the cause a person can act on. The receiver
//! keeps the first bytes of the handshake and asks this module.
//!
//! ```text
//! record:    0x16 | legacy version (2) | length (2)
//! handshake: 0x01 (ClientHello) | length (3) | client_version (2) | random (32)
//!            | session id (1 + n) | cipher suites (2 + n) | compression (1 + n)
//!            | extensions (2 + n): type (2) | length (2) | data
//! supported_versions (0x002b) data: length (1) | versions (2 each)
//! ```

/// Bytes of the handshake kept for [`classify`]: a ClientHello fits one record.
pub(super) const KEPT: usize = 5 + 16 * 1024;

/// TLS 1.2's version number; anything lower is TLS 1.1, 1.0 or SSL 3.
const TLS12: u16 = 0x0303;
const CONTENT_HANDSHAKE: u8 = 0x16;
const CLIENT_HELLO: u8 = 0x01;
const SUPPORTED_VERSIONS: u16 = 0x002b;

/// What the client's first bytes were.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Offered {
    /// Not a TLS handshake record at all (plaintext Lumberjack, HTTP, ...).
    NotTls,
    /// A ClientHello whose versions are all below TLS 1.2.
    OnlyOldTls,
    /// A ClientHello offering TLS 1.2 or later, or too little to tell.
    Other,
}

/// Classifies the first bytes a client sent (at most [`KEPT`]).
pub(super) fn classify(first: &[u8]) -> Offered {
    match first.first() {
        None => return Offered::Other,
        Some(&CONTENT_HANDSHAKE) => {}
        Some(_) => return Offered::NotTls,
    }
    // Record header (5) and handshake header (4), then client_version.
    if first.len() < 11 || first[5] != CLIENT_HELLO {
        return Offered::Other;
    }
    if u16::from_be_bytes([first[9], first[10]]) >= TLS12 {
        return Offered::Other;
    }
    // An old legacy version with a supported_versions extension naming TLS 1.2+ is a
    // client rustls may still refuse for another reason: not "only old TLS".
    match highest_supported_version(&first[11..]) {
        Some(v) if v >= TLS12 => Offered::Other,
        _ => Offered::OnlyOldTls,
    }
}

/// The highest version in the supported_versions extension of a ClientHello body
/// (from `random` on), if the extension is there and readable.
fn highest_supported_version(body: &[u8]) -> Option<u16> {
    let mut r = Reader(body);
    r.skip(32)?;
    let session = r.u8()?;
    r.skip(usize::from(session))?;
    let suites = r.u16()?;
    r.skip(usize::from(suites))?;
    let compression = r.u8()?;
    r.skip(usize::from(compression))?;
    let ext_len = r.u16()?;
    let mut exts = Reader(r.take(usize::from(ext_len).min(r.0.len()))?);
    while let (Some(kind), Some(len)) = (exts.u16(), exts.u16()) {
        let data = exts.take(usize::from(len))?;
        if kind == SUPPORTED_VERSIONS {
            let mut v = Reader(data);
            let n = v.u8()?;
            let list = v.take(usize::from(n))?;
            return list
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .max();
        }
    }
    None
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn skip(&mut self, n: usize) -> Option<()> {
        self.take(n).map(|_| ())
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
}

/// A minimal ClientHello as a client limited to `version` sends it, with the given
/// extensions.
#[cfg(test)]
pub(super) fn client_hello(version: u16, extensions: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&version.to_be_bytes());
    body.extend_from_slice(&[7u8; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 4, 0x00, 0x2f, 0x00, 0x35]); // AES128-SHA, AES256-SHA
    body.extend_from_slice(&[1, 0]); // null compression
    if !extensions.is_empty() {
        body.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
        body.extend_from_slice(extensions);
    }
    let mut hs = vec![CLIENT_HELLO];
    hs.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    hs.extend(body);
    let mut record = vec![CONTENT_HANDSHAKE, 0x03, 0x01];
    record.extend_from_slice(&(hs.len() as u16).to_be_bytes());
    record.extend(hs);
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_is_not_tls() {
        assert_eq!(classify(b"2W\0\0\0\x01"), Offered::NotTls);
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Offered::NotTls);
        assert_eq!(classify(b""), Offered::Other);
    }

    #[test]
    fn tls10_and_tls11_hellos_are_told_apart_from_modern_ones() {
        assert_eq!(classify(&client_hello(0x0301, &[])), Offered::OnlyOldTls);
        assert_eq!(classify(&client_hello(0x0302, &[])), Offered::OnlyOldTls);
        assert_eq!(classify(&client_hello(0x0303, &[])), Offered::Other);
        // supported_versions naming TLS 1.3 with an old legacy version: not "old only".
        let ext = [0x00, 0x2b, 0x00, 0x03, 0x02, 0x03, 0x04];
        assert_eq!(classify(&client_hello(0x0301, &ext)), Offered::Other);
        let old_ext = [0x00, 0x2b, 0x00, 0x05, 0x04, 0x03, 0x02, 0x03, 0x01];
        assert_eq!(
            classify(&client_hello(0x0301, &old_ext)),
            Offered::OnlyOldTls
        );
        // Cut anywhere, it never panics; a cut header tells nothing.
        let hello = client_hello(0x0301, &ext);
        for cut in 0..hello.len() {
            let _ = classify(&hello[..cut]);
        }
        assert_eq!(classify(&hello[..10]), Offered::Other);
    }
}
