//! The bulk response classifier: HTTP status and body in, one verdict per item (or one for
//! the whole request) out. Pure; the decisions are data the sender acts on.
//!
//! | whole request     | verdict                                           |
//! |-------------------|---------------------------------------------------|
//! | 2xx               | parse `items`, one [`ItemVerdict`] each           |
//! | 413               | [`RequestVerdict::Split`]: too large, halve it    |
//! | 401, 403          | [`RequestVerdict::CredentialRefused`], nothing dropped |
//! | 403 cluster block | [`RequestVerdict::RetryAll`] with the cluster's reason |
//! | 429, 5xx          | [`RequestVerdict::RetryAll`]                      |
//! | other             | [`RequestVerdict::Failed`] (the sender retries with backoff, as Beats) |
//!
//! | item status                      | verdict                                  |
//! |----------------------------------|------------------------------------------|
//! | 2xx                              | `Done`                                   |
//! | 409 on a `create` action         | `AlreadyIndexed` (a replayed batch)      |
//! | 429, 5xx                         | `Retry`, only this item                  |
//! | other 4xx (incl. 409 on `index`) | `NonIndexable`: dead-letter or drop      |
//! | anything else                    | the whole reply is malformed: retried    |
//!
//! Items are matched to the request by position, as Elasticsearch returns them in order;
//! a count that differs from what was sent is an error, never a guess.

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

use super::event::Key;

/// What became of one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ItemVerdict {
    /// Indexed (2xx).
    Done,
    /// 409 on `create`: a document with this id exists; the event was delivered before.
    AlreadyIndexed,
    /// 429 or 5xx: send this item again after a backoff.
    Retry {
        /// HTTP status of the item.
        status: u16,
        /// `type: reason` from the item's error.
        reason: String,
    },
    /// Any other 4xx: the cluster will never accept this document as it is.
    NonIndexable {
        /// HTTP status of the item.
        status: u16,
        /// `type: reason` from the item's error.
        reason: String,
    },
}

/// What became of the whole request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestVerdict {
    /// 2xx: one verdict per item, in request order.
    Items(Vec<ItemVerdict>),
    /// 413: the body exceeds `http.max_content_length`; split the batch.
    Split,
    /// 401/403: the credential was refused; back off, drop nothing.
    CredentialRefused {
        /// 401 or 403.
        status: u16,
    },
    /// 429 or 5xx for the whole request: retry all items after a backoff.
    RetryAll {
        /// HTTP status.
        status: u16,
        /// The error from the body, or the start of the body.
        reason: String,
    },
    /// Any other status: a proxy or configuration problem (wrong path, bad parameter).
    Failed {
        /// HTTP status.
        status: u16,
        /// The error from the body, or the start of the body.
        reason: String,
    },
}

/// A 2xx bulk response that cannot be matched to the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ResponseError {
    /// The body is not a bulk response.
    #[error("malformed bulk response: {0}")]
    Malformed(String),
    /// A different number of items than sent.
    #[error("bulk response has {got} items for {sent} sent")]
    ItemCount {
        /// Items in the request.
        sent: usize,
        /// Items in the response.
        got: usize,
    },
}

/// The `error.type` of a whole-request error body, when it has one.
fn error_type(body: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Whole {
        error: ErrorValue,
    }
    match serde_json::from_slice::<Whole>(body).ok()?.error {
        ErrorValue::Detail { kind, .. } => kind,
        ErrorValue::Text(_) => None,
    }
}

/// Longest body excerpt kept as a reason when the body is not JSON.
const EXCERPT: usize = 200;

/// Classifies a bulk reply to a request of `sent` items.
///
/// # Errors
/// [`ResponseError`] for a 2xx whose body is not a bulk response or has the wrong count.
pub fn classify(status: u16, body: &[u8], sent: usize) -> Result<RequestVerdict, ResponseError> {
    match status {
        200..=299 => {}
        413 => return Ok(RequestVerdict::Split),
        // A cluster-wide block (`cluster.blocks.read_only`, a flood-stage watermark) answers
        // the whole request 403 too, but it is the cluster's state, not our credential:
        // retried with the cluster's reason, so the log points at the real cause.
        403 if error_type(body).as_deref() == Some("cluster_block_exception") => {
            return Ok(RequestVerdict::RetryAll {
                status,
                reason: request_reason(body),
            })
        }
        401 | 403 => return Ok(RequestVerdict::CredentialRefused { status }),
        429 | 500..=599 => {
            return Ok(RequestVerdict::RetryAll {
                status,
                reason: request_reason(body),
            })
        }
        _ => {
            return Ok(RequestVerdict::Failed {
                status,
                reason: request_reason(body),
            })
        }
    }
    let parsed: BulkResponse =
        serde_json::from_slice(body).map_err(|e| ResponseError::Malformed(e.to_string()))?;
    let items = parsed
        .items
        .ok_or_else(|| ResponseError::Malformed("no items array".to_string()))?;
    if items.len() != sent {
        return Err(ResponseError::ItemCount {
            sent,
            got: items.len(),
        });
    }
    // An item status that is neither 2xx, 4xx nor 5xx says nothing about the document; read
    // as "other 4xx" it would drop the event, so the reply is malformed (found by fuzzing).
    if let Some(item) = items
        .iter()
        .find(|i| !matches!(i.status, 200..=299 | 400..=599))
    {
        return Err(ResponseError::Malformed(format!(
            "bulk item status {} is not 2xx, 4xx or 5xx",
            item.status
        )));
    }
    Ok(RequestVerdict::Items(
        items.into_iter().map(Item::verdict).collect(),
    ))
}

/// The reason of a failed whole request: `type: reason` from an Elasticsearch error body,
/// else the start of the body as text.
pub fn request_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Whole {
        error: ErrorValue,
    }
    match serde_json::from_slice::<Whole>(body) {
        Ok(w) => w.error.describe(),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let mut cut = text.trim().chars().take(EXCERPT).collect::<String>();
            if text.trim().chars().count() > EXCERPT {
                cut.push('…');
            }
            if cut.is_empty() {
                "empty body".to_string()
            } else {
                cut
            }
        }
    }
}

#[derive(Deserialize)]
struct BulkResponse {
    #[serde(default)]
    items: Option<Vec<Item>>,
}

struct Item {
    create: bool,
    status: u16,
    error: Option<ErrorValue>,
}

#[derive(Deserialize)]
struct ItemBody {
    status: u16,
    #[serde(default)]
    error: Option<ErrorValue>,
}

impl<'de> Deserialize<'de> for Item {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Item;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a bulk item {\"<action>\": {\"status\": ...}}")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
                let Some(action) = map.next_key::<Key<'de>>()? else {
                    return Err(de::Error::custom("empty bulk item"));
                };
                let body: ItemBody = map.next_value()?;
                if map.next_key::<Key<'de>>()?.is_some() {
                    return Err(de::Error::custom("bulk item with more than one action"));
                }
                Ok(Item {
                    create: action.as_str() == "create",
                    status: body.status,
                    error: body.error,
                })
            }
        }
        d.deserialize_map(V)
    }
}

impl Item {
    fn verdict(self) -> ItemVerdict {
        let reason = || {
            self.error
                .as_ref()
                .map(ErrorValue::describe)
                .unwrap_or_else(|| format!("HTTP {}", self.status))
        };
        match self.status {
            200..=299 => ItemVerdict::Done,
            409 if self.create => ItemVerdict::AlreadyIndexed,
            429 | 500..=599 => ItemVerdict::Retry {
                status: self.status,
                reason: reason(),
            },
            status => ItemVerdict::NonIndexable {
                status,
                reason: reason(),
            },
        }
    }
}

/// An Elasticsearch error: an object with `type`/`reason`/`caused_by`, or (old versions,
/// proxies) a plain string.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorValue {
    Detail {
        #[serde(rename = "type", default)]
        kind: Option<String>,
        #[serde(default)]
        reason: Option<String>,
        #[serde(default)]
        caused_by: Option<Box<ErrorValue>>,
    },
    Text(String),
}

impl ErrorValue {
    fn describe(&self) -> String {
        match self {
            ErrorValue::Text(s) => s.clone(),
            ErrorValue::Detail {
                kind,
                reason,
                caused_by,
            } => {
                let mut out = match (kind, reason) {
                    (Some(k), Some(r)) => format!("{k}: {r}"),
                    (Some(k), None) => k.clone(),
                    (None, Some(r)) => r.clone(),
                    (None, None) => "unknown error".to_string(),
                };
                if let Some(cause) = caused_by {
                    out.push_str(" (caused by ");
                    out.push_str(&cause.describe());
                    out.push(')');
                }
                out
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ItemVerdict::*;

    /// A mixed response as Elasticsearch 8 writes it (trimmed).
    const MIXED: &str = r#"{
      "took": 30, "errors": true,
      "items": [
        {"index": {"_index": "logs", "_id": "1", "_version": 1, "result": "created", "status": 201,
                   "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1}},
        {"create": {"_index": "logs", "_id": "2", "status": 409,
                    "error": {"type": "version_conflict_engine_exception",
                              "reason": "[2]: version conflict, document already exists (current version [1])",
                              "index_uuid": "x", "shard": "0", "index": "logs"}}},
        {"index": {"_index": "logs", "_id": "3", "status": 409,
                   "error": {"type": "version_conflict_engine_exception", "reason": "[3]: version conflict"}}},
        {"index": {"_index": "logs", "_id": "4", "status": 400,
                   "error": {"type": "document_parsing_exception",
                             "reason": "[1:15] failed to parse field [n] of type [long]",
                             "caused_by": {"type": "illegal_argument_exception",
                                           "reason": "For input string: \"abc\""}}}},
        {"index": {"_index": "logs", "_id": "5", "status": 429,
                   "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"}}},
        {"index": {"_index": "logs", "_id": "6", "status": 503,
                   "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
        {"update": {"_index": "logs", "_id": "7", "status": 200}},
        {"index": {"_index": "logs", "_id": "8", "status": 404, "error": "index_not_found_exception"}}
      ]
    }"#;

    #[test]
    fn every_item_gets_its_verdict() {
        let v = classify(200, MIXED.as_bytes(), 8).unwrap();
        let RequestVerdict::Items(items) = v else {
            panic!("{v:?}")
        };
        assert_eq!(
            items,
            vec![
                Done,
                AlreadyIndexed,
                NonIndexable {
                    status: 409,
                    reason: "version_conflict_engine_exception: [3]: version conflict".into()
                },
                NonIndexable {
                    status: 400,
                    reason: "document_parsing_exception: [1:15] failed to parse field [n] of type [long] (caused by illegal_argument_exception: For input string: \"abc\")".into()
                },
                Retry {
                    status: 429,
                    reason: "es_rejected_execution_exception: rejected execution".into()
                },
                Retry {
                    status: 503,
                    reason: "unavailable_shards_exception: primary shard is not active".into()
                },
                Done,
                NonIndexable {
                    status: 404,
                    reason: "index_not_found_exception".into()
                },
            ]
        );
    }

    #[test]
    fn whole_request_statuses() {
        let table: Vec<(u16, &str, RequestVerdict)> = vec![
            (413, "", RequestVerdict::Split),
            (401, r#"{"error":{"type":"security_exception"}}"#, RequestVerdict::CredentialRefused { status: 401 }),
            (403, "", RequestVerdict::CredentialRefused { status: 403 }),
            (
                403,
                r#"{"error":{"type":"cluster_block_exception","reason":"blocked by: [FORBIDDEN/6/cluster read-only (api)];"},"status":403}"#,
                RequestVerdict::RetryAll {
                    status: 403,
                    reason: "cluster_block_exception: blocked by: [FORBIDDEN/6/cluster read-only (api)];".to_string(),
                },
            ),
            (
                429,
                r#"{"error":{"type":"es_rejected_execution_exception","reason":"queue full"},"status":429}"#,
                RequestVerdict::RetryAll { status: 429, reason: "es_rejected_execution_exception: queue full".into() },
            ),
            (502, "<html>Bad Gateway</html>", RequestVerdict::RetryAll { status: 502, reason: "<html>Bad Gateway</html>".into() }),
            (503, "", RequestVerdict::RetryAll { status: 503, reason: "empty body".into() }),
            (
                400,
                r#"{"error":{"root_cause":[],"type":"illegal_argument_exception","reason":"The bulk request must be terminated by a newline [\\n]"},"status":400}"#,
                RequestVerdict::Failed { status: 400, reason: "illegal_argument_exception: The bulk request must be terminated by a newline [\\n]".into() },
            ),
            (404, "no handler", RequestVerdict::Failed { status: 404, reason: "no handler".into() }),
        ];
        for (status, body, want) in table {
            assert_eq!(
                classify(status, body.as_bytes(), 3).unwrap(),
                want,
                "{status} {body}"
            );
        }
        let long = "x".repeat(500);
        let RequestVerdict::Failed { reason, .. } = classify(404, long.as_bytes(), 1).unwrap()
        else {
            panic!()
        };
        assert_eq!(reason.chars().count(), EXCERPT + 1);
    }

    #[test]
    fn all_ok_and_malformed_bodies() {
        let ok = r#"{"took":1,"errors":false,"items":[{"create":{"status":201}},{"index":{"status":200}}]}"#;
        assert_eq!(
            classify(200, ok.as_bytes(), 2).unwrap(),
            RequestVerdict::Items(vec![Done, Done])
        );
        assert_eq!(
            classify(200, ok.as_bytes(), 3).unwrap_err(),
            ResponseError::ItemCount { sent: 3, got: 2 }
        );
        for bad in [
            "",
            "<html>",
            r#"{"took":1}"#,
            r#"{"items":[{}]}"#,
            r#"{"items":[{"index":{}}]}"#,
            r#"{"items":[{"index":{"status":201},"create":{"status":201}}]}"#,
            r#"{"items":[{"create":{"status":818}}]}"#,
            r#"{"items":[{"index":{"status":302}}]}"#,
            r#"{"items":[{"index":{"status":0}}]}"#,
        ] {
            assert!(
                matches!(
                    classify(200, bad.as_bytes(), 1),
                    Err(ResponseError::Malformed(_))
                ),
                "{bad}"
            );
        }
    }
}
