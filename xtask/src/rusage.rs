//! Resource usage of child processes (`getrusage`, `wait4`), for the benchmarks' CPU times and
//! peak memory.
use std::io::Read;
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

/// One finished child: what it printed and what it cost.
pub struct Measured {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub wall_s: f64,
    pub cpu_s: f64,
    pub peak_rss_kib: u64,
}

/// Runs `cmd` to completion with stdout and stderr captured and reaps it with `wait4`, which
/// gives this child's own CPU time and peak RSS.
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
    let stderr_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = err_pipe.read_to_end(&mut buf);
        buf
    });
    let mut stdout = Vec::new();
    let read = child
        .stdout
        .take()
        .expect("stdout is piped")
        .read_to_end(&mut stdout);
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
