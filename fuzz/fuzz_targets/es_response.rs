//! An Elasticsearch bulk reply (first byte: status pick and items sent, rest: body) into
//! the response classifier. Never panics; a 2xx verdict has exactly one verdict per item
//! sent, in order, and each item verdict agrees with the item's own status class.
#![no_main]

use libfuzzer_sys::fuzz_target;
use skidder::outputs::elasticsearch::response::{classify, ItemVerdict, RequestVerdict};

const STATUSES: [u16; 16] = [
    200, 201, 299, 413, 401, 403, 429, 500, 503, 599, 404, 400, 301, 100, 300, 0,
];

fuzz_target!(|data: &[u8]| {
    let Some((&head, body)) = data.split_first() else {
        return;
    };
    let status = STATUSES[usize::from(head & 0x0f)];
    let sent = usize::from(head >> 4);
    match classify(status, body, sent) {
        Ok(RequestVerdict::Items(items)) => {
            assert!(
                (200..300).contains(&status),
                "items verdict for status {status}"
            );
            assert_eq!(items.len(), sent, "one verdict per item sent");
            for item in items {
                match item {
                    ItemVerdict::Retry { status, .. } => {
                        assert!(status == 429 || (500..600).contains(&status))
                    }
                    ItemVerdict::NonIndexable { status, .. } => {
                        assert!((400..500).contains(&status) && status != 429)
                    }
                    ItemVerdict::Done | ItemVerdict::AlreadyIndexed => {}
                }
            }
        }
        Ok(RequestVerdict::Split) => assert_eq!(status, 413),
        Ok(RequestVerdict::CredentialRefused { status: s }) => assert!(s == 401 || s == 403),
        Ok(RequestVerdict::RetryAll { status: s, .. }) => {
            assert!(s == 429 || (500..600).contains(&s))
        }
        Ok(RequestVerdict::Failed { .. }) => {}
        Err(e) => {
            assert!(
                (200..300).contains(&status),
                "error {e} for status {status}"
            );
            assert!(!e.to_string().is_empty());
        }
    }
});
