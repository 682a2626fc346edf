//! Resource usage of child processes (`getrusage`, `wait4`), for the benchmarks' CPU times and
//! peak memory.
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Instant;

/// `struct rusage` on 64-bit Linux: two `timeval`s (user, system), then 14 longs, the first of
/// which is the peak resident set size in KiB.
#[repr(C)]
#[derive(Default)]
pub struct RUsage {
    utime_sec: i64,
    utime_usec: i64,
    stime_sec: i64,
    stime_usec: i64,
    maxrss_kib: i64,
    rest: [i64; 13],
}

impl RUsage {
    /// User + system CPU seconds.
    pub fn cpu_seconds(&self) -> f64 {
        (self.utime_sec + self.stime_sec) as f64 + (self.utime_usec + self.stime_usec) as f64 / 1e6
    }
}

extern "C" {
    fn getrusage(who: i32, usage: *mut RUsage) -> i32;
    fn wait4(pid: i32, status: *mut i32, options: i32, usage: *mut RUsage) -> i32;
}

/// User + system CPU seconds of all waited-for children so far.
pub fn children_cpu_seconds() -> f64 {
    const RUSAGE_CHILDREN: i32 = -1;
    let mut u = RUsage::default();
    // SAFETY: `u` is a writable `struct rusage` of the size Linux expects on 64-bit targets.
    let rc = unsafe { getrusage(RUSAGE_CHILDREN, &mut u) };
    if rc != 0 {
        return 0.0;
    }
    u.cpu_seconds()
}

/// At most this much of a child's stdout is kept (for error messages); the rest only goes
/// through the digest, so this process stays small: Linux counts the spawning process's peak
/// RSS into each child's `ru_maxrss`, and a harness that held a program's whole output would
/// raise the floor under every later measurement.
pub const KEPT_OUTPUT: usize = 64 * 1024;

/// What a child printed on stdout: its length, a digest of all of it, and its first
/// [`KEPT_OUTPUT`] bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Output {
    pub len: u64,
    pub digest: u64,
    pub head: Vec<u8>,
}

impl Output {
    /// The digest of `bytes` as [`measure`] computes it for a child that printed them.
    pub fn of(bytes: &[u8]) -> Output {
        let mut o = Output::new();
        o.feed(bytes);
        o
    }

    fn new() -> Output {
        Output {
            len: 0,
            digest: 0xcbf2_9ce4_8422_2325,
            head: Vec::new(),
        }
    }

    /// FNV-1a over every byte; the head keeps the first bytes.
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.digest = (self.digest ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
        self.len += bytes.len() as u64;
        let room = KEPT_OUTPUT.saturating_sub(self.head.len());
        self.head.extend_from_slice(&bytes[..room.min(bytes.len())]);
    }
}

/// One finished child: what it printed and what it cost.
pub struct Measured {
    pub status: ExitStatus,
    pub stdout: Output,
    pub stderr: Vec<u8>,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
}

/// Runs `cmd` to completion with stdout digested (see [`Output`]) and stderr captured, and reaps
/// it with `wait4`, which gives this child's own CPU time and peak RSS.
pub fn measure(mut cmd: Command) -> Result<Measured, String> {
    let what = format!("{cmd:?}");
    let start = Instant::now();
    let mut child: Child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run {what}: {e} (is it installed?)"))?;
    let mut err_pipe = child.stderr.take().expect("stderr is piped");
    // Read stderr to the end (a full pipe would block the child) but keep only its head.
    let stderr_reader = std::thread::spawn(move || {
        let mut head = Output::new();
        let _ = std::io::copy(&mut err_pipe, &mut head);
        head.head
    });
    let mut stdout = Output::new();
    let mut pipe = child.stdout.take().expect("stdout is piped");
    let read = std::io::copy(&mut pipe, &mut stdout);
    drop(pipe);
    let stderr = stderr_reader.join().unwrap_or_default();
    let mut status = 0i32;
    let mut usage = RUsage::default();
    loop {
        // SAFETY: `status` and `usage` are writable and of the types wait4 expects; the pid is
        // our own child, which nothing else waits for (std's `Child` only reaps in `wait`).
        let rc = unsafe { wait4(child.id() as i32, &mut status, 0, &mut usage) };
        if rc >= 0 {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4 for {what}: {err}"));
        }
    }
    let wall_s = start.elapsed().as_secs_f64();
    read.map_err(|e| format!("reading the output of {what}: {e}"))?;
    Ok(Measured {
        status: ExitStatus::from_raw(status),
        stdout,
        stderr,
        wall_s,
        cpu_s: usage.cpu_seconds(),
        peak_rss_kib: usage.maxrss_kib.max(0) as u64,
    })
}

impl std::io::Write for Output {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.feed(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_digest_covers_every_byte_and_keeps_the_head() {
        let big = vec![b'a'; KEPT_OUTPUT + 10];
        let mut other = big.clone();
        *other.last_mut().unwrap() = b'b';
        let (a, b) = (Output::of(&big), Output::of(&other));
        assert_eq!(a.len, b.len);
        assert_eq!(a.head, b.head);
        assert_eq!(a.head.len(), KEPT_OUTPUT);
        assert!(a != b, "a difference past the head must show in the digest");
        let mut split = Output::new();
        split.feed(&big[..5]);
        split.feed(&big[5..]);
        assert!(split == a, "feeding in pieces gives the same digest");
    }

    #[test]
    fn measure_reports_output_status_and_usage() {
        let mut c = Command::new("sh");
        // 100 KiB of stderr: more than a pipe holds, read to the end, only the head kept.
        c.args([
            "-c",
            "printf 'hi\\n'; echo oops >&2; head -c 102400 /dev/zero >&2; exit 3",
        ]);
        let m = measure(c).unwrap();
        assert!(m.stdout == Output::of(b"hi\n"));
        assert!(m.stderr.starts_with(b"oops\n"));
        assert_eq!(m.stderr.len(), KEPT_OUTPUT);
        assert_eq!(m.status.code(), Some(3));
        assert!(m.peak_rss_kib > 0);
    }
}
