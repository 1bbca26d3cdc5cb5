//! Who is shipping: the agent identity libbeat stamps on every event, and its persistent id.
//!
//! # `meta.json` (under `path.data`), as Beats writes it
//! ```text
//! {"uuid":"a2c4e6f8-…-…","first_start":"2026-12-06T10:39:54.123456789Z"}
//! ```
//! `uuid` is `agent.id`: created (random, version 4) on the first run, then kept across
//! runs. `first_start` is when it was created (RFC 3339, UTC). The file is written as Beats
//! does: to `meta.json.new` (mode 0600), fsynced, then renamed over `meta.json`, so a crash
//! leaves the old file or the new one, never half of one. A file whose `uuid` is missing or
//! the nil UUID gets a new id (Beats' rule); a file that is not JSON is refused, naming it,
//! rather than silently replaced (the id is what Fleet and dashboards key on).
//!
//! # Built-in fields (libbeat's `processing/default.go`)
//! ```text
//! agent: {type, version, name, hostname, id, ephemeral_id}, ecs: {version}, host: {name}
//! ```
//! `agent.name` and `host.name` are the top-level `name`, else the hostname.
//! `agent.type` is `skidder`, not `filebeat`: Logstash pipelines that test
//! `[agent][type] == "filebeat"` need to accept it (documented in the README).

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};

use crate::processors::Fields;

/// `agent.type`.
pub const AGENT_TYPE: &str = "skidder";
/// `ecs.version`: the ECS version of the fields written (Filebeat 7.17's).
pub const ECS_VERSION: &str = "1.12.0";
/// The file holding `agent.id`, under `path.data`.
pub const META_FILE: &str = "meta.json";

/// Why the agent identity could not be loaded or kept.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentError {
    /// `meta.json` exists but cannot be read.
    #[error("path.data: cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `meta.json` is not what Beats writes.
    #[error("path.data: {} is not a Beats meta file ({reason}); move it away to get a new agent.id", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `meta.json` cannot be written.
    #[error("path.data: cannot write {}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// No random bytes for a new id.
    #[error("cannot generate a random agent id")]
    Random,
}

/// The identity of this skidder process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    /// `agent.name` and `host.name`: the configured `name`, else the hostname.
    pub name: String,
    /// `agent.hostname`.
    pub hostname: String,
    /// `agent.version`.
    pub version: String,
    /// `agent.id`: kept in `meta.json`.
    pub id: String,
    /// `agent.ephemeral_id`: new for every process.
    pub ephemeral_id: String,
    /// When `id` was created (RFC 3339).
    first_start: String,
    /// The id is not in `meta.json` yet: [`Agent::persist`] writes it.
    unsaved: bool,
}

/// One process's ephemeral id: every plan of the same process shares it.
static EPHEMERAL: std::sync::OnceLock<String> = std::sync::OnceLock::new();

impl Agent {
    /// The identity: `id` from `<data_dir>/meta.json` if it holds one, else a new one
    /// (written by [`Agent::persist`], so that `test config` writes nothing).
    ///
    /// # Errors
    /// [`AgentError`] when the file exists but cannot be read or is not JSON.
    pub fn load(data_dir: &Path, name: Option<&str>) -> Result<Self, AgentError> {
        let path = data_dir.join(META_FILE);
        let (id, first_start) = match std::fs::read(&path) {
            Ok(bytes) => parse_meta(&bytes).map_err(|reason| AgentError::Invalid {
                path: path.clone(),
                reason,
            })?,
            // No file yet, or no directory yet (created, or refused naming path.data,
            // before the file is written).
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                (None, None)
            }
            Err(source) => return Err(AgentError::Read { path, source }),
        };
        let ephemeral = match EPHEMERAL.get() {
            Some(e) => e.clone(),
            None => {
                let e = uuid_v4()?;
                EPHEMERAL.get_or_init(|| e).clone()
            }
        };
        let hostname = hostname();
        let unsaved = id.is_none() || first_start.is_none();
        Ok(Self {
            name: name
                .filter(|n| !n.is_empty())
                .map_or_else(|| hostname.clone(), str::to_string),
            hostname,
            version: env!("CARGO_PKG_VERSION").to_string(),
            id: match id {
                Some(id) => id,
                None => uuid_v4()?,
            },
            ephemeral_id: ephemeral,
            first_start: first_start.unwrap_or_else(now_rfc3339),
            unsaved,
        })
    }

    /// When skidder first ran on this data directory (`meta.json`'s `first_start`); `None`
    /// when the stored text is not RFC 3339.
    pub fn first_start(&self) -> Option<std::time::SystemTime> {
        time::OffsetDateTime::parse(
            &self.first_start,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()
        .map(std::time::SystemTime::from)
    }

    /// Writes `meta.json` when it does not hold this id yet (atomically, mode 0600).
    ///
    /// # Errors
    /// [`AgentError::Write`] naming the file.
    pub fn persist(&self, data_dir: &Path) -> Result<(), AgentError> {
        if !self.unsaved {
            return Ok(());
        }
        let path = data_dir.join(META_FILE);
        let tmp = data_dir.join(format!("{META_FILE}.new"));
        let body = format!(
            "{}\n",
            json!({"uuid": self.id, "first_start": self.first_start})
        );
        let write = || -> std::io::Result<()> {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut f = opts.open(&tmp)?;
            f.write_all(body.as_bytes())?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, &path)?;
            // The rename is durable only once the directory is synced.
            std::fs::File::open(data_dir)?.sync_all()
        };
        write().map_err(|source| AgentError::Write { path, source })
    }

    /// libbeat's built-in fields: `agent.*`, `ecs.version`, `host.name`.
    pub fn builtin_fields(&self) -> Fields {
        let v = json!({
            "agent": {
                "type": AGENT_TYPE,
                "version": self.version,
                "name": self.name,
                "hostname": self.hostname,
                "id": self.id,
                "ephemeral_id": self.ephemeral_id,
            },
            "ecs": {"version": ECS_VERSION},
            "host": {"name": self.name},
        });
        match v {
            Value::Object(m) => m,
            _ => Fields::new(),
        }
    }
}

/// `(uuid, first_start)` of a meta file; a missing or nil uuid is `None` (a new one is made).
fn parse_meta(bytes: &[u8]) -> Result<(Option<String>, Option<String>), String> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        // Beats reads an empty file as "no id yet" (io.EOF).
        return Ok((None, None));
    }
    let v: Value = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let Value::Object(m) = v else {
        return Err("not a JSON object".into());
    };
    let id = match m.get("uuid") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if is_uuid(s) => {
            Some(s.to_ascii_lowercase()).filter(|s| s != "00000000-0000-0000-0000-000000000000")
        }
        Some(other) => return Err(format!("uuid is not a UUID: {other}")),
    };
    let first = m
        .get("first_start")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty() && !s.starts_with("0001-01-01"))
        .map(str::to_string);
    Ok((id, first))
}

fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// A random (version 4) UUID.
///
/// # Errors
/// [`AgentError::Random`] when the system has no randomness to give.
pub fn uuid_v4() -> Result<String, AgentError> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| AgentError::Random)?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    ))
}

fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The host name, as Go's `os.Hostname` gives it (the kernel's node name).
pub fn hostname() -> String {
    uname_field(|u| &u.nodename)
}

/// The parts of `uname(2)` skidder reports.
#[derive(Debug, Default)]
pub struct Uname {
    /// `nodename`: the host name.
    pub nodename: String,
    /// `release`: the kernel version.
    pub release: String,
    /// `machine`: the architecture (`x86_64`).
    pub machine: String,
}

/// One field of `uname(2)`; empty when the call fails.
pub fn uname_field(f: impl Fn(&Uname) -> &String) -> String {
    // SAFETY: uname fills the zeroed struct we own; each field is NUL-terminated.
    let u = unsafe {
        let mut raw: libc::utsname = std::mem::zeroed();
        if libc::uname(&mut raw) != 0 {
            return String::new();
        }
        let text = |chars: &[libc::c_char]| {
            std::ffi::CStr::from_ptr(chars.as_ptr())
                .to_string_lossy()
                .into_owned()
        };
        Uname {
            nodename: text(&raw.nodename),
            release: text(&raw.release),
            machine: text(&raw.machine),
        }
    };
    f(&u).clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_is_created_once_and_kept_across_runs() {
        let dir = tempfile::tempdir().unwrap();
        let a = Agent::load(dir.path(), None).unwrap();
        assert!(is_uuid(&a.id), "{}", a.id);
        assert!(!dir.path().join(META_FILE).exists(), "load writes nothing");
        a.persist(dir.path()).unwrap();
        let path = dir.path().join(META_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["uuid"], a.id.as_str());
        assert!(v["first_start"].as_str().unwrap().ends_with('Z'));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(!dir.path().join("meta.json.new").exists());
        let b = Agent::load(dir.path(), Some("edge-1")).unwrap();
        assert_eq!(b.id, a.id);
        assert_eq!(
            b.ephemeral_id, a.ephemeral_id,
            "one process, one ephemeral id"
        );
        assert_eq!(b.name, "edge-1");
        assert_eq!(a.name, hostname());
    }

    #[test]
    fn a_beats_meta_file_is_read_and_a_broken_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(META_FILE);
        std::fs::write(
            &path,
            "{\"uuid\":\"0E9F1D0C-52B1-4A7F-9F0A-5A3E4C1B2D3E\",\"first_start\":\"2024-01-02T03:04:05.1Z\"}\n",
        )
        .unwrap();
        let a = Agent::load(dir.path(), None).unwrap();
        assert_eq!(a.id, "0e9f1d0c-52b1-4a7f-9f0a-5a3e4c1b2d3e");
        std::fs::write(&path, "{\"uuid\":\"00000000-0000-0000-0000-000000000000\"}").unwrap();
        let b = Agent::load(dir.path(), None).unwrap();
        assert_ne!(b.id, "00000000-0000-0000-0000-000000000000");
        b.persist(dir.path()).unwrap();
        assert!(std::fs::read_to_string(&path).unwrap().contains(&b.id));
        std::fs::write(&path, "{not json").unwrap();
        let err = Agent::load(dir.path(), None).unwrap_err().to_string();
        assert!(err.contains("meta.json is not a Beats meta file"), "{err}");
    }

    #[test]
    fn builtin_fields_have_libbeat_names() {
        let dir = tempfile::tempdir().unwrap();
        let a = Agent::load(dir.path(), Some("n1")).unwrap();
        let f = Value::Object(a.builtin_fields());
        assert_eq!(f["agent"]["type"], "skidder");
        assert_eq!(f["agent"]["name"], "n1");
        assert_eq!(f["host"]["name"], "n1");
        assert_eq!(f["agent"]["hostname"], hostname());
        assert_eq!(f["ecs"]["version"], ECS_VERSION);
        assert_eq!(f["agent"]["id"], a.id.as_str());
    }
}
