//! Finding files: the `paths` globs, `include_files`/`exclude_files`, symlinks, and each
//! file's identity (`file_identity`), as Filebeat's scanner does (`fswatch.go`). A scan only
//! `stat`s paths (and reads a fingerprint's bytes): no descriptor stays open.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use regex::Regex;

/// How a file is recognised (`file_identity`).
#[derive(Debug, Clone)]
pub enum Identity {
    /// `native::<inode>-<device>`.
    Native,
    /// `path::<path>`: a renamed file is a new file.
    Path,
    /// `inode_marker::<inode>-<marker contents>`.
    InodeMarker {
        /// The marker file.
        marker: PathBuf,
    },
    /// `fingerprint::<sha256 hex>` of `length` bytes from `offset`.
    Fingerprint {
        /// First byte hashed.
        offset: u64,
        /// Bytes hashed.
        length: u64,
    },
}

impl Identity {
    /// The name stored in the registry.
    pub fn name(&self) -> &'static str {
        match self {
            Identity::Native => "native",
            Identity::Path => "path",
            Identity::InodeMarker { .. } => "inode_marker",
            Identity::Fingerprint { .. } => "fingerprint",
        }
    }
}

/// A file found by a scan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    /// The path as the glob matched it (the link's path for a followed symlink).
    pub path: PathBuf,
    /// Its identity key.
    pub key: String,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub mtime: SystemTime,
}

/// The scanner of one input.
#[derive(Debug)]
pub struct Scanner {
    globs: Vec<String>,
    include: Vec<Regex>,
    exclude: Vec<Regex>,
    symlinks: bool,
    identity: Identity,
}

impl Scanner {
    /// A scanner over `globs` (made absolute against the working directory).
    pub fn new(
        globs: &[String],
        include: Vec<Regex>,
        exclude: Vec<Regex>,
        symlinks: bool,
        identity: Identity,
    ) -> Self {
        let cwd = std::env::current_dir().unwrap_or_default();
        let globs = globs
            .iter()
            .map(|g| {
                if Path::new(g).is_absolute() {
                    g.clone()
                } else {
                    cwd.join(g).display().to_string()
                }
            })
            .collect();
        Self {
            globs,
            include,
            exclude,
            symlinks,
            identity,
        }
    }

    /// The identity kind.
    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    /// Every matching regular file, once per identity (the first path wins, as in Filebeat).
    pub fn scan(&self) -> Vec<Found> {
        let mut out: Vec<Found> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let marker = match &self.identity {
            Identity::InodeMarker { marker } => match std::fs::read_to_string(marker) {
                Ok(m) => Some(m),
                Err(e) => {
                    tracing::warn!(marker = %marker.display(), error = %e, "cannot read the inode_marker file; no file is identified until it can be");
                    return out;
                }
            },
            _ => None,
        };
        for g in &self.globs {
            let Ok(paths) = glob::glob(g) else {
                continue;
            };
            for path in paths.flatten() {
                let text = path.to_string_lossy();
                if !self.include.is_empty() && !self.include.iter().any(|r| r.is_match(&text)) {
                    continue;
                }
                if self.exclude.iter().any(|r| r.is_match(&text)) {
                    continue;
                }
                let Ok(lmeta) = std::fs::symlink_metadata(&path) else {
                    continue;
                };
                let meta = if lmeta.file_type().is_symlink() {
                    if !self.symlinks {
                        continue;
                    }
                    match std::fs::metadata(&path) {
                        Ok(m) => m,
                        Err(_) => continue,
                    }
                } else {
                    lmeta
                };
                if !meta.file_type().is_file() {
                    continue;
                }
                let Some(key) = self.key(&path, &meta, marker.as_deref()) else {
                    continue;
                };
                if !seen.insert(key.clone()) {
                    tracing::debug!(path = %text, "skipped: another path of this scan is the same file");
                    continue;
                }
                out.push(Found {
                    key,
                    size: meta.len(),
                    mtime: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    path,
                });
            }
        }
        out
    }

    /// The identity key of `path`, or `None` when it cannot be had yet (a file shorter than
    /// its fingerprint).
    fn key(&self, path: &Path, meta: &std::fs::Metadata, marker: Option<&str>) -> Option<String> {
        Some(match &self.identity {
            Identity::Native => format!("native::{}-{}", meta.ino(), meta.dev()),
            Identity::Path => format!("path::{}", path.display()),
            Identity::InodeMarker { .. } => {
                format!(
                    "inode_marker::{}-{}",
                    meta.ino(),
                    marker.unwrap_or_default()
                )
            }
            Identity::Fingerprint { offset, length } => {
                if meta.len() < offset + length {
                    return None;
                }
                format!("fingerprint::{}", fingerprint(path, *offset, *length)?)
            }
        })
    }
}

/// Lowercase hex SHA-256 of `length` bytes from `offset`.
pub fn fingerprint(path: &Path, offset: u64, length: u64) -> Option<String> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path).ok()?;
    f.seek(SeekFrom::Start(offset)).ok()?;
    let mut buf = vec![0u8; usize::try_from(length).ok()?];
    f.read_exact(&mut buf).ok()?;
    let digest = ring::digest::digest(&ring::digest::SHA256, &buf);
    Some(digest.as_ref().iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_filters_symlinks_and_identities() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("a.log"), b"x\n").unwrap();
        std::fs::write(d.join("b.log"), b"y\n").unwrap();
        std::fs::write(d.join("skip.log"), b"z\n").unwrap();
        std::os::unix::fs::symlink(d.join("a.log"), d.join("link.log")).unwrap();
        std::fs::create_dir(d.join("dir.log")).unwrap();
        let glob = vec![format!("{}/*.log", d.display())];
        let s = Scanner::new(
            &glob,
            Vec::new(),
            vec![Regex::new("skip").unwrap()],
            false,
            Identity::Native,
        );
        let names: Vec<String> = s
            .scan()
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["a.log", "b.log"]);
        // Followed, the link is the same file as a.log: one of them only.
        let s = Scanner::new(&glob, Vec::new(), Vec::new(), true, Identity::Native);
        assert_eq!(s.scan().len(), 3);
        let s = Scanner::new(&glob, Vec::new(), Vec::new(), false, Identity::Path);
        assert!(s.scan()[0].key.starts_with("path::/"));
        let s = Scanner::new(
            &glob,
            Vec::new(),
            Vec::new(),
            false,
            Identity::Fingerprint {
                offset: 0,
                length: 64,
            },
        );
        assert!(
            s.scan().is_empty(),
            "files shorter than the fingerprint wait"
        );
        std::fs::write(d.join("a.log"), vec![b'q'; 100]).unwrap();
        let f = s.scan();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].key.len(), "fingerprint::".len() + 64);
    }
}
