//! A SOCKS5 proxy's replies (first byte: with or without user/password, rest: what the
//! proxy sends) into the handshake `output.logstash.proxy_url` runs. Never panics, never
//! hangs (the replies end), and succeeds only on a well-formed success reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder::outputs::logstash::transport::socks5_handshake;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, replies)) = data.split_first() else {
        return;
    };
    let auth = (mode & 1 == 1).then_some(("user", "pass"));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime needs no I/O driver");
    let proxy = tokio::io::join(replies, tokio::io::sink());
    let result = rt.block_on(socks5_handshake(proxy, ("logstash.example", 5044), auth));
    if result.is_err() {
        return;
    }
    // Method choice: 0 (none), or 2 (password) only when we offered it, then its status 0.
    assert_eq!(replies[0], 5, "accepted a method reply of another version");
    let at = match replies[1] {
        0 => 2,
        2 => {
            assert!(auth.is_some(), "accepted password auth we did not offer");
            assert_eq!(replies[3], 0, "accepted a failed password authentication");
            4
        }
        m => panic!("accepted method {m}"),
    };
    assert_eq!(
        replies[at..at + 3],
        [5, 0, 0],
        "accepted a reply that is not success"
    );
    assert!(
        matches!(replies[at + 3], 1 | 3 | 4),
        "accepted address type {}",
        replies[at + 3]
    );
});
