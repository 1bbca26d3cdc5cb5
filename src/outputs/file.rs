//! `output.file`: one event per line into `path/filename`, rotated by size.
//!
//! Rotation as Beats' numbered scheme: when the next line would take the current file past
//! `rotate_every_kb`, `filename.(n-2)` → `filename.(n-1)`, ..., `filename` → `filename.1`,
//! and a fresh `filename` is opened; at most `number_of_files` files exist, the current one
//! included. Lines are never split across files.

use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Output, OutputError, WorkerFuture};
use crate::config::FileOutputConfig;
use crate::pipeline::{Batch, BatchSource, Metrics};

/// The file output worker.
#[derive(Debug)]
pub struct FileOutput {
    dir: PathBuf,
    filename: String,
    rotate_bytes: u64,
    keep: u32,
    mode: u32,
    file: Option<BufWriter<File>>,
    size: u64,
}

impl FileOutput {
    /// Validates the settings.
    ///
    /// # Errors
    /// [`OutputError::Invalid`] naming the key: empty `path` or `filename`, `permissions` not
    /// octal, `number_of_files` outside 2..=1024, `rotate_every_kb` zero.
    pub fn new(c: &FileOutputConfig) -> Result<Self, OutputError> {
        let invalid = |key, reason: &str| OutputError::Invalid {
            key,
            reason: reason.to_string(),
        };
        if c.path.as_os_str().is_empty() {
            return Err(invalid("output.file.path", "is required (a directory)"));
        }
        if c.filename.is_empty() || c.filename.contains('/') {
            return Err(invalid(
                "output.file.filename",
                "must be a non-empty file name without '/'",
            ));
        }
        let mode = u32::from_str_radix(c.permissions.trim_start_matches("0o"), 8)
            .ok()
            .filter(|m| *m <= 0o7777)
            .ok_or_else(|| {
                invalid(
                    "output.file.permissions",
                    &format!("{:?} is not an octal file mode such as 0600", c.permissions),
                )
            })?;
        if !(2..=1024).contains(&c.number_of_files) {
            return Err(invalid(
                "output.file.number_of_files",
                &format!("{} is outside 2..=1024", c.number_of_files),
            ));
        }
        if c.rotate_every_kb == 0 {
            return Err(invalid("output.file.rotate_every_kb", "must be at least 1"));
        }
        Ok(Self {
            dir: c.path.clone(),
            filename: c.filename.clone(),
            rotate_bytes: c.rotate_every_kb.saturating_mul(1024),
            keep: c.number_of_files,
            mode,
            file: None,
            size: 0,
        })
    }

    fn path(&self, n: u32) -> PathBuf {
        if n == 0 {
            self.dir.join(&self.filename)
        } else {
            self.dir.join(format!("{}.{n}", self.filename))
        }
    }

    fn io(what: &'static str, path: PathBuf) -> impl FnOnce(std::io::Error) -> OutputError {
        move |source| OutputError::Io { what, path, source }
    }

    fn open(&mut self) -> Result<&mut BufWriter<File>, OutputError> {
        if self.file.is_none() {
            std::fs::create_dir_all(&self.dir)
                .map_err(Self::io("cannot create directory", self.dir.clone()))?;
            let path = self.path(0);
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .mode(self.mode)
                .open(&path)
                .map_err(Self::io("cannot open", path.clone()))?;
            self.size = file
                .metadata()
                .map_err(Self::io("cannot stat", path))?
                .len();
            self.file = Some(BufWriter::with_capacity(256 * 1024, file));
        }
        // Just set above when it was None.
        self.file.as_mut().ok_or(OutputError::Invalid {
            key: "output.file.path",
            reason: "file could not be opened".to_string(),
        })
    }

    fn rotate(&mut self) -> Result<(), OutputError> {
        if let Some(mut f) = self.file.take() {
            f.flush()
                .map_err(Self::io("cannot write to", self.path(0)))?;
        }
        for n in (1..self.keep - 1).rev() {
            match std::fs::rename(self.path(n), self.path(n + 1)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(Self::io("cannot rotate", self.path(n))(e));
                }
                _ => {}
            }
        }
        std::fs::rename(self.path(0), self.path(1))
            .map_err(Self::io("cannot rotate", self.path(0)))?;
        self.size = 0;
        Ok(())
    }

    fn write_batch(&mut self, batch: &Batch) -> Result<u64, OutputError> {
        let mut written = 0u64;
        for doc in batch.docs() {
            let line = doc.len() as u64 + 1;
            self.open()?;
            if self.size > 0 && self.size + line > self.rotate_bytes {
                self.rotate()?;
            }
            let path = self.path(0);
            let f = self.open()?;
            f.write_all(doc)
                .and_then(|()| f.write_all(b"\n"))
                .map_err(Self::io("cannot write to", path))?;
            self.size += line;
            written += line;
        }
        let path = self.path(0);
        if let Some(f) = self.file.as_mut() {
            f.flush().map_err(Self::io("cannot write to", path))?;
        }
        Ok(written)
    }
}

impl Output for FileOutput {
    fn run(mut self: Box<Self>, mut batches: BatchSource, metrics: Arc<Metrics>) -> WorkerFuture {
        Box::pin(async move {
            tokio::task::block_in_place(|| self.open().map(|_| ()))?;
            while let Some(batch) = batches.next_batch().await {
                match tokio::task::block_in_place(|| self.write_batch(&batch)) {
                    Ok(bytes) => {
                        metrics.output_bytes.fetch_add(bytes, Ordering::Relaxed);
                        batch.ack();
                    }
                    Err(e) => {
                        // Lines of this batch may be in the file already; a retry could
                        // duplicate them, which at-least-once delivery allows.
                        batch.retry();
                        return Err(e);
                    }
                }
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path) -> FileOutputConfig {
        FileOutputConfig {
            path: dir.to_path_buf(),
            ..FileOutputConfig::default()
        }
    }

    #[test]
    fn bad_settings_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.permissions = "rw-r".into();
        let e = FileOutput::new(&c).unwrap_err().to_string();
        assert!(e.contains("output.file.permissions"), "{e}");
        let mut c = config(dir.path());
        c.number_of_files = 1;
        let e = FileOutput::new(&c).unwrap_err().to_string();
        assert!(e.contains("output.file.number_of_files"), "{e}");
        let c = FileOutputConfig::default();
        let e = FileOutput::new(&c).unwrap_err().to_string();
        assert!(e.contains("output.file.path"), "{e}");
    }

    #[test]
    fn rotation_keeps_number_of_files_and_whole_lines() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = config(dir.path());
        c.rotate_every_kb = 1;
        c.number_of_files = 3;
        let mut out = FileOutput::new(&c).unwrap();
        out.open().unwrap();
        let line = vec![b'a'; 299];
        for _ in 0..20 {
            out.open().unwrap();
            if out.size > 0 && out.size + 300 > out.rotate_bytes {
                out.rotate().unwrap();
            }
            let f = out.open().unwrap();
            f.write_all(&line).unwrap();
            f.write_all(b"\n").unwrap();
            out.size += 300;
        }
        out.file.take().unwrap().flush().unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["skidder", "skidder.1", "skidder.2"]);
        for n in &names {
            let text = std::fs::read(dir.path().join(n)).unwrap();
            assert!(
                text.len() <= 1024 && text.len() % 300 == 0,
                "{n}: {}",
                text.len()
            );
        }
    }
}
