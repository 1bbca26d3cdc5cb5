//! What a person sees on a terminal: skidder runs on a pseudo-terminal (stdout and stderr
//! both on it, as in an interactive shell) and the screen's lines are checked.

mod common;

use std::io::Read;
use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Stdio;
use std::time::Duration;

/// A pseudo-terminal pair: (controller, the terminal the child writes to).
fn openpty() -> (OwnedFd, OwnedFd) {
    let (mut controller, mut terminal) = (-1, -1);
    // A window of a common size: without one the terminal reports 0x0 and the progress line's
    // width is a guess.
    let size = libc::winsize {
        ws_row: 40,
        ws_col: 160,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: openpty writes two descriptors into the ints we pass; the name may be null, and
    // the termios and winsize pointers are read only.
    let rc = unsafe {
        libc::openpty(
            &mut controller,
            &mut terminal,
            std::ptr::null_mut(),
            std::ptr::null(),
            &size,
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors are fresh and owned by nobody else.
    unsafe {
        (
            OwnedFd::from_raw_fd(controller),
            OwnedFd::from_raw_fd(terminal),
        )
    }
}

/// The text of each screen line: what remains after the last carriage return (a redraw
/// starts with one), escape sequences removed.
fn screen_lines(raw: &str) -> Vec<String> {
    let strip = |s: &str| {
        let mut out = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                // CSI: ESC [ parameters final-byte.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
            } else {
                out.push(c);
            }
        }
        out
    };
    raw.split('\n')
        .map(|line| {
            let line = line.trim_end_matches('\r');
            strip(line.rsplit('\r').next().unwrap_or_default())
        })
        .collect()
}

#[test]
fn log_lines_and_the_progress_line_never_share_a_screen_line() {
    let dir = tempfile::tempdir().unwrap();
    // ~2.5 s of events and a metrics line every 100 ms: many log lines while the progress
    // line is drawn.
    let cfg = common::config(
        dir.path(),
        "skidder.inputs:\n  - type: generator\n    count: 2500\n    eps: 1000\noutput.discard: {}\nlogging.metrics.period: 100ms\n",
    );
    let (controller, terminal) = openpty();
    let mut child = common::reap::Reap(
        common::bin()
            .args(["-e", "-c"])
            .arg(&cfg)
            .current_dir(dir.path())
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::from(terminal.try_clone().unwrap()))
            .stderr(Stdio::from(terminal))
            .spawn()
            .unwrap(),
    );
    let reader = std::thread::spawn(move || {
        let mut screen = std::fs::File::from(controller);
        let mut raw = Vec::new();
        // The read ends with EIO once the child closed the terminal.
        let _ = screen.read_to_end(&mut raw);
        String::from_utf8_lossy(&raw).into_owned()
    });
    let status = common::wait_exit(&mut child.0, Duration::from_secs(60));
    assert_eq!(status.code(), Some(0));
    let raw = reader.join().unwrap();
    let lines = screen_lines(&raw);
    assert!(
        raw.contains("events/s"),
        "the progress line was drawn on the terminal:\n{raw:?}"
    );
    let logs: Vec<&String> = lines.iter().filter(|l| l.contains("INFO")).collect();
    assert!(logs.len() >= 5, "log lines on the terminal:\n{lines:#?}");
    for line in &logs {
        assert!(
            !line.contains("events/s"),
            "a log line shares its screen line with the progress line: {line:?}"
        );
    }
}
