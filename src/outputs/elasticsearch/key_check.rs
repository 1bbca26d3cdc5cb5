//! The API key's own expiry and validity, read from Elasticsearch at start and then
//! periodically (elastic-security.md §2, pitfall 2).
//!
//! `_security/_authenticate` does not report an expiry, so skidder asks
//! `GET /_security/api_key?id=<own id>` with the key itself: Elasticsearch allows a key to
//! read its own entry without any privilege (never with `owner=true` alone, nor
//! `with_limited_by`). An expired or invalidated key cannot authenticate at all: the
//! answer is then 401 with the reason in `additional_unsuccessful_credentials`.
//!
//! - At start ([`startup`]): a refused (expired, invalidated, unknown) key stops the run
//!   before any input starts, naming the key id and Elasticsearch's reason; a key within
//!   `ssl.expiry_warning` of its expiry is logged at WARN with the date. A cluster that
//!   cannot be reached, or does not answer the question (no security, an older version),
//!   does not stop the run: delivery itself will show.
//! - While running ([`periodic`]): the same read every [`RECHECK`] or after a rotation,
//!   by whichever worker finds it due; the WARN repeats, and the seconds left are a metric.

use std::time::Duration;

use time::OffsetDateTime;
use tracing::{debug, info, warn};

use super::client::{EsClient, EsError};
use crate::credentials::expiry::format_time;
use crate::credentials::CredentialError;

/// How often a running output re-reads its key's expiry.
pub const RECHECK: Duration = Duration::from_secs(3600);

/// What Elasticsearch says about the key in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyStatus {
    /// The key's id.
    pub id: String,
    /// The key's name.
    pub name: Option<String>,
    /// Its expiry; `None` when it never expires.
    pub expiration: Option<OffsetDateTime>,
    /// True when invalidated.
    pub invalidated: bool,
}

/// Why the key cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyCheckError {
    /// Elasticsearch refused the key (401): expired, invalidated, unknown or wrong.
    #[error("output.elasticsearch: API key id {id} is refused by {host}: {reason}; create a new key (skidder apikey create) and put it in api_key, api_key_path or the keystore")]
    Refused {
        /// The key id.
        id: String,
        /// The host that refused it.
        host: String,
        /// Elasticsearch's reason.
        reason: String,
    },
    /// The key's own entry says it is expired or invalidated.
    #[error("output.elasticsearch: API key id {id} {state}; create a new key (skidder apikey create) and put it in api_key, api_key_path or the keystore")]
    Unusable {
        /// The key id.
        id: String,
        /// `expired at DATE` or `was invalidated`.
        state: String,
    },
}

/// Epoch milliseconds as a time.
fn from_millis(ms: i64) -> Option<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

/// Reads the status of the API key in use from host `host`. `Ok(None)`: the credential is
/// not an API key, or the cluster did not answer the question (logged at DEBUG).
///
/// # Errors
/// [`KeyCheckError`] when the key is refused, expired or invalidated.
pub async fn read(client: &EsClient, host: usize) -> Result<Option<KeyStatus>, KeyCheckError> {
    let Some(id) = client.auth().key_id() else {
        return Ok(None);
    };
    let host_name = client
        .hosts()
        .get(host)
        .map(|h| h.authority())
        .unwrap_or_default();
    let endpoint = format!("_security/api_key?id={}", urlencode(&id));
    let reply = match client.request(host, &endpoint, None).await {
        Ok(r) if (200..300).contains(&r.status) => r,
        Ok(r) => {
            debug!(host = %host_name, status = r.status, "the cluster did not report the API key's expiry");
            return Ok(None);
        }
        Err(EsError::Credential(CredentialError::Refused {
            status: 401,
            reason,
            host,
            ..
        })) => return Err(KeyCheckError::Refused { id, host, reason }),
        Err(e) => {
            debug!(host = %host_name, error = %e, "cannot read the API key's expiry now");
            return Ok(None);
        }
    };
    let v: serde_json::Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let Some(entry) = v["api_keys"]
        .as_array()
        .and_then(|keys| keys.iter().find(|k| k["id"].as_str() == Some(id.as_str())))
    else {
        debug!(host = %host_name, "the cluster's answer does not list the API key");
        return Ok(None);
    };
    Ok(Some(KeyStatus {
        name: entry["name"].as_str().map(str::to_string),
        expiration: entry["expiration"].as_i64().and_then(from_millis),
        invalidated: entry["invalidated"].as_bool().unwrap_or(false),
        id,
    }))
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

/// Judges `status` at `now`: an error for an expired or invalidated key, else the WARN
/// when it expires within `warning`. Pure, for the tests.
///
/// # Errors
/// [`KeyCheckError::Unusable`].
pub fn judge(
    status: &KeyStatus,
    now: OffsetDateTime,
    warning: Duration,
) -> Result<Option<String>, KeyCheckError> {
    if status.invalidated {
        return Err(KeyCheckError::Unusable {
            id: status.id.clone(),
            state: "was invalidated".to_string(),
        });
    }
    let Some(at) = status.expiration else {
        return Ok(None);
    };
    if at <= now {
        return Err(KeyCheckError::Unusable {
            id: status.id.clone(),
            state: format!("expired at {}", format_time(at)),
        });
    }
    let left = at - now;
    if left <= time::Duration::try_from(warning).unwrap_or(time::Duration::MAX) {
        return Ok(Some(format!(
            "API key id {} expires at {} (in {}s); create a new key and rotate it (api_key_path or the keystore take it without a restart)",
            status.id,
            format_time(at),
            left.whole_seconds()
        )));
    }
    Ok(None)
}

/// Reads and judges the key once, recording its expiry in the shared credential; logs the
/// WARN. Errors only for a refused, expired or invalidated key.
async fn check(client: &EsClient, host: usize, warning: Duration) -> Result<(), KeyCheckError> {
    let Some(status) = read(client, host).await? else {
        return Ok(());
    };
    client.auth().set_expiration(status.expiration);
    match judge(&status, OffsetDateTime::now_utc(), warning)? {
        Some(message) => warn!(
            key_id = %status.id,
            expires = %status.expiration.map(format_time).unwrap_or_default(),
            "{message}"
        ),
        None => info!(
            key_id = %status.id,
            name = status.name.as_deref().unwrap_or(""),
            expires = %status.expiration.map_or_else(|| "never".to_string(), format_time),
            "Elasticsearch API key checked"
        ),
    }
    Ok(())
}

/// The check at start: the first host that answers decides.
///
/// # Errors
/// [`KeyCheckError`]: the run must not start.
pub async fn startup(client: &EsClient, warning: Duration) -> Result<(), KeyCheckError> {
    if client.auth().key_id().is_none() {
        return Ok(());
    }
    check(client, 0, warning).await
}

/// The periodic check of a running worker, when due (see the module docs). A refused key
/// is only logged here: the bulk requests report it and wait for a new one.
pub async fn periodic(client: &EsClient, host: usize, warning: Duration) {
    if client.auth().key_id().is_none() || !client.auth().expiry_check_due(RECHECK) {
        return;
    }
    if let Err(e) = check(client, host, warning).await {
        debug!(error = %e, "API key check while running");
    }
}

/// Seconds until the key in use expires, for the metric; `None` when it does not.
pub fn seconds_left(client: &EsClient) -> Option<u64> {
    let at = client.auth().expiration()?;
    let left = (at - OffsetDateTime::now_utc()).whole_seconds();
    Some(u64::try_from(left).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(expiration: Option<OffsetDateTime>, invalidated: bool) -> KeyStatus {
        KeyStatus {
            id: "VuaCfGcBCdbkQm-e5aOx".into(),
            name: Some("k".into()),
            expiration,
            invalidated,
        }
    }

    #[test]
    fn expired_invalidated_and_soon_expiring_keys() {
        let now = OffsetDateTime::now_utc();
        let day = Duration::from_secs(86400);
        let e = judge(&status(Some(now - time::Duration::SECOND), false), now, day)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("API key id VuaCfGcBCdbkQm-e5aOx expired at"),
            "{e}"
        );
        let e = judge(&status(None, true), now, day)
            .unwrap_err()
            .to_string();
        assert!(e.contains("was invalidated"), "{e}");
        let w = judge(&status(Some(now + time::Duration::HOUR), false), now, day)
            .unwrap()
            .unwrap();
        assert!(w.contains("expires at") && w.contains("in 3600s"), "{w}");
        assert!(judge(
            &status(Some(now + 2 * time::Duration::DAY), false),
            now,
            day
        )
        .unwrap()
        .is_none());
        assert!(judge(&status(None, false), now, day).unwrap().is_none());
    }
}
