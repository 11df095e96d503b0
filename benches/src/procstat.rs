//! Process facts the load generator reports and tunes: CPU used (its own and
//! the server's), the server's resident memory and open files, whether it is
//! still running, the open-files limit, CPU pinning and timer precision.
//!
//! A load test is only meaningful if the generator is not the bottleneck, so
//! every result carries the loadgen's own CPU use next to the server's.

use std::time::Instant;

use anyhow::{bail, Result};

/// CPU seconds (user + system) this process has used so far.
pub fn self_cpu_seconds() -> f64 {
    rusage_cpu_seconds(libc::RUSAGE_SELF)
}

/// CPU seconds (user + system) the calling thread has used so far.
pub fn thread_cpu_seconds() -> f64 {
    rusage_cpu_seconds(libc::RUSAGE_THREAD)
}

/// `getrusage(who)`'s user + system time, in seconds (0 if it fails).
fn rusage_cpu_seconds(who: libc::c_int) -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(who, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// CPU seconds (user + system) process `pid` has used, from `/proc`.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name (which may hold spaces):
    // state is field 3, utime 14 and stime 15 (1-based), in clock ticks.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

/// Resident memory of process `pid` in KiB (`VmRSS`), from `/proc`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Open file descriptors of process `pid` (the entries of `/proc/PID/fd`),
/// counted without following them; `None` if the process is gone or not
/// ours to look into.
pub fn open_fds(pid: u32) -> Option<u64> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(entries.filter(|e| e.is_ok()).count() as u64)
}

/// Whether process `pid` exists and has not exited (a zombie, an exited
/// child nobody has waited for yet, counts as exited).
pub fn is_running(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, None | Some("Z") | Some("X"))
}

/// CPU use over an interval, as a fraction of one core.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    wall: Instant,
    own: f64,
    server: Option<(u32, f64)>,
}

impl CpuMeter {
    /// Starts measuring this process and, if known, the server process.
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            wall: Instant::now(),
            own: self_cpu_seconds(),
            server: server_pid.and_then(|pid| Some((pid, process_cpu_seconds(pid)?))),
        }
    }

    /// (loadgen, server) CPU use since `start`, in cores (1.0 = one core busy).
    pub fn read(&self) -> (f64, Option<f64>) {
        let wall = self.wall.elapsed().as_secs_f64().max(1e-9);
        let own = (self_cpu_seconds() - self.own) / wall;
        let server = self
            .server
            .and_then(|(pid, before)| Some((process_cpu_seconds(pid)? - before) / wall));
        (own, server)
    }
}

/// Raises the open-files soft limit to the hard limit (10k+ sockets need
/// it); returns the new soft limit. Children (a spawned server) inherit it.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: get/setrlimit read and write the struct we own.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Pins the calling thread (and the threads it starts later) to `cpu`, so
/// the loadgen and the server do not compete for one core.
pub fn pin_to_cpu(cpu: usize) -> Result<()> {
    if cpu >= libc::CPU_SETSIZE as usize {
        bail!("cpu {cpu} out of range");
    }
    // SAFETY: a zeroed cpu_set_t is empty; CPU_SET stays in bounds (checked).
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc != 0 {
        bail!(
            "sched_setaffinity({cpu}): {}",
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Asks the kernel to wake this thread's sleeps within ~1 µs of the deadline
/// instead of the default 50 µs slack: the publisher's schedule is only as
/// precise as its sleeps.
pub fn precise_timers() {
    // SAFETY: PR_SET_TIMERSLACK takes a plain integer argument.
    unsafe {
        libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong);
    }
}

/// Gives the calling thread real-time priority (`SCHED_FIFO`, the lowest
/// real-time level), so it runs the moment it wakes even while the
/// subscriber threads keep the same core busy. Returns whether the kernel
/// allowed it (it needs `CAP_SYS_NICE`, or root).
pub fn realtime_priority() -> bool {
    // SAFETY: sched_setscheduler reads the parameter struct we own; pid 0
    // is the calling thread.
    unsafe {
        let param = libc::sched_param { sched_priority: 1 };
        libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let pid = std::process::id();
        assert!(rss_kib(pid).is_some_and(|kib| kib > 100));
        // Other tests open and close files meanwhile: a hundred files must
        // show as about a hundred more fds.
        let fds = open_fds(pid).unwrap();
        let files: Vec<_> = (0..100)
            .map(|_| std::fs::File::open("/proc/self/status").unwrap())
            .collect();
        let more = open_fds(pid).unwrap().saturating_sub(fds);
        assert!((90..=110).contains(&more), "{more} more fds");
        drop(files);
        assert!(is_running(pid));
        assert!(!is_running(u32::MAX) && open_fds(u32::MAX).is_none());
        let meter = CpuMeter::start(Some(pid));
        let spin = Instant::now();
        while spin.elapsed().as_millis() < 50 {
            std::hint::black_box(0u64);
        }
        let (own, server) = meter.read();
        assert!(own > 0.1, "{own}");
        assert!(server.is_some());
        assert!(raise_fd_limit() >= 1024);
    }
}
