//! Children measured by the kernel: CPU (user + sys) and peak RSS come from `wait4(2)`,
//! so every sender and server is measured the same way whatever it reports itself.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::error::BenchError;

/// What the kernel says about a finished child.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// Exit code; -1 if a signal ended it.
    pub code: i32,
    /// User plus system CPU seconds.
    pub cpu_s: f64,
    /// Peak resident set size in KiB.
    pub max_rss_kib: u64,
    /// Wall time from spawn to exit.
    pub wall_s: f64,
}

/// A running child whose stdout and stderr go to files (read while it runs or after).
#[derive(Debug)]
pub struct Running {
    name: String,
    pid: libc::pid_t,
    started: Instant,
    /// Where its stdout goes.
    pub stdout: PathBuf,
    /// Where its stderr goes.
    pub stderr: PathBuf,
    reaped: bool,
}

/// Starts `cmd` with stdout/stderr redirected to `<dir>/<name>.out` / `.err`.
///
/// # Errors
/// [`BenchError::Io`] for the log files, [`BenchError::Spawn`] if it cannot start.
pub fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Result<Running, BenchError> {
    let stdout = dir.join(format!("{name}.out"));
    let stderr = dir.join(format!("{name}.err"));
    let open = |p: &Path| {
        std::fs::File::create(p).map_err(|source| BenchError::Io {
            what: format!("creating {}", p.display()),
            source,
        })
    };
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(open(&stdout)?))
        .stderr(Stdio::from(open(&stderr)?));
    let program = PathBuf::from(cmd.get_program());
    let child: Child = cmd
        .spawn()
        .map_err(|source| BenchError::Spawn { program, source })?;
    // We reap the child ourselves with wait4; std's Child never waits on drop.
    let pid = child.id() as libc::pid_t;
    Ok(Running {
        name: name.to_string(),
        pid,
        started: Instant::now(),
        stdout,
        stderr,
        reaped: false,
    })
}

impl Running {
    /// Waits for exit at most `limit`, killing the child after that.
    ///
    /// # Errors
    /// [`BenchError::Timeout`] if it had to be killed.
    pub fn wait(mut self, limit: Duration) -> Result<Usage, BenchError> {
        let (usage, killed) = self.reap(limit);
        if killed {
            return Err(BenchError::Timeout {
                program: self.name.clone(),
                seconds: limit.as_secs(),
            });
        }
        Ok(usage)
    }

    /// Asks the child to stop (SIGTERM), then waits as [`Running::wait`] does.
    pub fn terminate(mut self, limit: Duration) -> Usage {
        // SAFETY: plain kill(2) on a pid we spawned and have not reaped yet.
        unsafe { libc::kill(self.pid, libc::SIGTERM) };
        self.reap(limit).0
    }

    fn reap(&mut self, limit: Duration) -> (Usage, bool) {
        let pid = self.pid;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut status: libc::c_int = 0;
            // SAFETY: rusage is plain old data, zeroed is a valid value.
            let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: wait4 on our own child with valid out-pointers.
            let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
            let _ = tx.send((r, status, ru));
        });
        let mut killed = false;
        let got = match rx.recv_timeout(limit) {
            Ok(v) => Some(v),
            Err(_) => {
                killed = true;
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                rx.recv_timeout(Duration::from_secs(10)).ok()
            }
        };
        self.reaped = true;
        let wall_s = self.started.elapsed().as_secs_f64();
        let Some((_, status, ru)) = got.filter(|(r, _, _)| *r == pid) else {
            return (
                Usage {
                    code: -1,
                    cpu_s: 0.0,
                    max_rss_kib: 0,
                    wall_s,
                },
                true,
            );
        };
        let code = if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            -1
        };
        let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
        (
            Usage {
                code,
                cpu_s: secs(ru.ru_utime) + secs(ru.ru_stime),
                max_rss_kib: u64::try_from(ru.ru_maxrss).unwrap_or(0),
                wall_s,
            },
            killed,
        )
    }

    /// Waits (bounded) until a line containing `marker` appears in its stdout or stderr,
    /// and returns that line.
    ///
    /// # Errors
    /// [`BenchError::NotReady`] with the tail of its output.
    pub fn wait_for_line(&self, marker: &str, limit: Duration) -> Result<String, BenchError> {
        let deadline = Instant::now() + limit;
        loop {
            for file in [&self.stdout, &self.stderr] {
                if let Ok(text) = std::fs::read_to_string(file) {
                    if let Some(line) = text.lines().find(|l| l.contains(marker)) {
                        return Ok(line.to_string());
                    }
                }
            }
            if self.has_exited() || Instant::now() >= deadline {
                return Err(BenchError::NotReady {
                    program: self.name.clone(),
                    marker: marker.to_string(),
                    seconds: limit.as_secs(),
                    output: tail(&self.stderr, 600) + &tail(&self.stdout, 300),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Running {
    /// True once the child has exited; it stays unreaped (WNOWAIT) so `wait` still gets
    /// its rusage. `kill(pid, 0)` would not do: it succeeds on a zombie.
    fn has_exited(&self) -> bool {
        // SAFETY: siginfo_t is plain old data; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid on our own child with a valid out-pointer.
        let r = unsafe {
            libc::waitid(
                libc::P_PID,
                self.pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        // SAFETY: si_pid is valid to read after a successful waitid.
        r == 0 && unsafe { info.si_pid() } != 0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.reaped {
            // A run abandoned on an error path: do not leave it running.
            // SAFETY: our own unreaped child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                let mut status = 0;
                libc::waitpid(self.pid, &mut status, 0);
            }
        }
    }
}

/// The median of `v`; NaN when it is empty.
pub fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// The last `n` bytes of a file (lossy), for error messages.
pub fn tail(path: &Path, n: usize) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = text.len().saturating_sub(n);
    String::from_utf8_lossy(&text[start..]).trim().to_string()
}
