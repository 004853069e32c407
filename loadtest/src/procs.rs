//! The servers under test as child processes: a free port, a scratch directory, pinning to
//! core 0 with `taskset`, CPU time from `/proc/PID/stat`, and a bounded stop.

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::process::{Child, Command};

/// A port nothing listens on right now (the kernel picks it; we release it for the child).
pub fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// A fresh scratch directory under the system temp dir; removed by [`Scratch::drop`].
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Result<Scratch, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "studyon-loadtest-{tag}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Where `taskset` is, if installed.
pub fn taskset() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("taskset"))
        .find(|p| p.is_file())
}

/// A server child process whose output goes to `log`.
pub struct Server {
    pub name: &'static str,
    child: Child,
    pub pid: u32,
    pub log: PathBuf,
}

/// Starts `program args…`, under `taskset -c 0` when `pin` is set (callers check
/// [`taskset`] first), with stdout and stderr appended to `log`.
pub fn spawn(
    name: &'static str,
    program: &Path,
    args: &[String],
    pin: bool,
    log: PathBuf,
    cwd: Option<&Path>,
) -> Result<Server, String> {
    spawn_with_env(name, program, args, &[], pin, log, cwd)
}

/// [`spawn`] with extra environment variables for the child.
pub fn spawn_with_env(
    name: &'static str,
    program: &Path,
    args: &[String],
    env: &[(&str, String)],
    pin: bool,
    log: PathBuf,
    cwd: Option<&Path>,
) -> Result<Server, String> {
    let out = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut cmd = if pin {
        let mut c = Command::new(taskset().ok_or("taskset vanished")?);
        c.arg("-c").arg("0").arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true);
    if let Some(dir) = cwd {
        cmd.current_dir(dir);
    }
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    // `taskset` execs the program, so the pid is the server's own.
    let pid = child.id().ok_or("child exited at once")?;
    Ok(Server {
        name,
        child,
        pid,
        log,
    })
}

impl Server {
    /// Still running?
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then SIGKILL if it has not exited after 10 s.
    pub async fn stop(mut self) {
        if !self.alive() {
            return;
        }
        // SAFETY: kill(2) on our own child's pid; it has not been reaped (try_wait said running).
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(10), self.child.wait()).await {
            Ok(_) => {}
            Err(_) => {
                eprintln!("{}: still running 10 s after SIGTERM; SIGKILL", self.name);
                let _ = self.child.kill().await;
            }
        }
    }

    /// The last lines of the server's output, for error reports.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

/// Clock ticks per second for `/proc/PID/stat` (`getconf CLK_TCK`, 100 on Linux).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 { t as f64 } else { 100.0 }
}

/// utime + stime of a process (all its threads), in seconds.
pub fn cpu_secs(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state) on.
    let rest = &stat[stat.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// Busy CPU time of the whole machine (all CPUs, from `/proc/stat`), in seconds.
pub fn machine_busy_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return 0.0;
    };
    let f: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: f64 = f.iter().take(8).sum();
    let idle = f.get(3).unwrap_or(&0.0) + f.get(4).unwrap_or(&0.0);
    (total - idle) / clk_tck()
}

/// CPU time of this process (the harness), in seconds.
pub fn own_cpu_secs() -> f64 {
    cpu_secs(std::process::id()).unwrap_or(0.0)
}

/// Polls `ready` every 50 ms until it returns true or `limit` passes.
pub async fn wait_until<F, Fut>(limit: Duration, mut ready: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    loop {
        if ready().await {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Leaves core 0 to the server: pins this process (before the runtime starts its threads) to
/// every allowed CPU but 0. Returns the CPUs the harness runs on.
pub fn pin_self_off_core0() -> Vec<usize> {
    // SAFETY: plain libc calls on a zeroed cpu_set_t that we own.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect();
        if cpus.len() < 2 || !cpus.contains(&0) {
            return cpus;
        }
        libc::CPU_CLR(0, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return cpus;
        }
        cpus.into_iter().filter(|&c| c != 0).collect()
    }
}

/// A `kB` field of `/proc/PID/status` (`VmRSS`, `VmHWM` the peak resident set).
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find(|l| l.starts_with(field) && l[field.len()..].starts_with(':'))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The machine's load averages, as `/proc/loadavg` gives them (1, 5, 15 minutes).
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "n/a".into())
}
