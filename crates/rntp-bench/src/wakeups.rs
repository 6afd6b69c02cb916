//! `wakeups`: what an idle client costs, rntpd against chronyd in the same run: timer wakeups
//! and requests per poll interval.
//!
//! Both daemons poll three servers of their own (this benchmark's own stratum-1 responders, so
//! every request is seen with its arrival time and the poll exponent in its header) at their
//! default polling, observe-only, without CAP_SYS_TIME. After a warm-up the benchmark measures
//! a window in which nothing else talks to them (no control queries):
//!
//! * **requests per poll**: the requests sent divided by the poll intervals that elapsed, an
//!   interval counting as long as the poll exponent of the request that opened it says (so 1.00
//!   is exactly the configured polling; burst spacing is excluded);
//! * **wakeups**: voluntary context switches of all the daemon's threads
//!   (`/proc/PID/task/*/status`), i.e. how often it went to sleep and was woken. A reply wakes
//!   a client at most once (on loopback it often arrives before the client sleeps again), so
//!   wakeups minus replies is a lower bound of the **timer wakeups** and the wakeups an upper
//!   one;
//! * with `--strace`, **timer wakeups** counted directly: strace attached for the window, a
//!   timer wakeup is a poller return on its timeout (`epoll_wait`/`select` returning 0: tokio's
//!   and chronyd's timers) or a read of a timerfd (rntpd's deadline).
//!
//! Safety: loopback only (127.14.Y.0/24), both daemons observe-only and under `setpriv
//! --inh-caps=-sys_time --bounding-set=-sys_time`, stopped by pid; every wait is bounded.

use std::collections::BTreeMap;
use std::fs;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::procs::{check_free, nocap, Block, Server};

/// How often a responder thread looks at its stop flag.
const TICK: Duration = Duration::from_millis(200);

/// Options of `rntp-bench wakeups`.
#[derive(Debug, clap::Args)]
pub struct WakeupsArgs {
    /// Seconds before the measured window (bursts, first poll adjustments).
    #[arg(long, default_value_t = 300)]
    warmup_secs: u64,
    /// Seconds measured.
    #[arg(long, default_value_t = 1800)]
    window_secs: u64,
    /// UDP port of the responders.
    #[arg(long, default_value_t = 12_460)]
    port: u16,
    /// `minpoll` and `maxpoll` for both clients, e.g. `6,6` (default: their defaults).
    #[arg(long)]
    poll: Option<String>,
    /// Also classify the wakeups with strace attached for the window: a timer wakeup is a
    /// poller return on a timeout (epoll_wait/select = 0) or a read of a timerfd.
    #[arg(long)]
    strace: bool,
}

/// One request seen by a responder: when, and the poll exponent in its header.
#[derive(Debug, Clone, Copy)]
struct Seen {
    at: Instant,
    poll: i8,
}

/// A stratum-1 responder on one address that records every client request.
struct Responder {
    seen: Arc<Mutex<Vec<Seen>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Responder {
    fn start(addr: SocketAddr) -> Result<Responder, String> {
        check_free(addr)?;
        let sock = UdpSocket::bind(addr).map_err(|e| format!("responder: bind {addr}: {e}"))?;
        sock.set_read_timeout(Some(TICK)).map_err(|e| e.to_string())?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st) = (Arc::clone(&seen), Arc::clone(&stop));
        let thread = thread::Builder::new()
            .name("responder".into())
            .spawn(move || serve(&sock, &s, &st))
            .map_err(|e| e.to_string())?;
        Ok(Responder { seen, stop, thread: Some(thread) })
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join(); // returns within one TICK
        }
    }
}

fn ntp_now() -> u64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
    let frac = (u64::from(d.subsec_nanos()) << 32) / 1_000_000_000;
    ((d.as_secs() + 2_208_988_800) << 32) | frac
}

fn serve(sock: &UdpSocket, seen: &Mutex<Vec<Seen>>, stop: &AtomicBool) {
    let mut buf = [0u8; 1024];
    while !stop.load(Ordering::SeqCst) {
        let Ok((len, from)) = sock.recv_from(&mut buf) else { continue };
        let req = &buf[..len];
        if len < 48 || req[0] & 7 != 3 {
            continue;
        }
        let rx = ntp_now();
        seen.lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Seen { at: Instant::now(), poll: req[2] as i8 });
        let mut p = [0u8; 48];
        p[0] = (((req[0] >> 3) & 7) << 3) | 4; // leap 0, the client's version, server mode
        p[1] = 1; // stratum 1
        p[2] = req[2];
        p[3] = (-20i8) as u8;
        p[8..12].copy_from_slice(&16u32.to_be_bytes()); // root dispersion 0.24 ms
        p[12..16].copy_from_slice(b"BNCH");
        p[16..24].copy_from_slice(&(rx - (1 << 32)).to_be_bytes());
        p[24..32].copy_from_slice(&req[40..48]);
        p[32..40].copy_from_slice(&rx.to_be_bytes());
        p[40..48].copy_from_slice(&ntp_now().to_be_bytes());
        let _ = sock.send_to(&p, from);
    }
}

/// Voluntary and involuntary context switches of every thread of `pid`.
fn switches(pid: u32) -> Result<(u64, u64), String> {
    let dir = format!("/proc/{pid}/task");
    let mut total = (0, 0);
    for task in fs::read_dir(&dir).map_err(|e| format!("{dir}: {e}"))? {
        let Ok(task) = task else { continue };
        let Ok(status) = fs::read_to_string(task.path().join("status")) else { continue };
        for line in status.lines() {
            let value = |l: &str| l.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok());
            if line.starts_with("voluntary_ctxt_switches:") {
                total.0 += value(line).unwrap_or(0);
            } else if line.starts_with("nonvoluntary_ctxt_switches:") {
                total.1 += value(line).unwrap_or(0);
            }
        }
    }
    Ok(total)
}

/// Requests in `[from, to)` and the poll intervals that elapsed meanwhile, over several
/// responders' logs: each interval ending in the window counts as (length / 2^poll of the
/// request that opened it); intervals shorter than a quarter of that (burst spacing) count as
/// neither.
fn polling(logs: &[Vec<Seen>], from: Instant, to: Instant) -> (u64, f64) {
    let (mut requests, mut polls) = (0u64, 0.0f64);
    for log in logs {
        for w in log.windows(2) {
            let (a, b) = (w[0], w[1]);
            if b.at < from || b.at >= to {
                continue;
            }
            let nominal = 2f64.powi(i32::from(a.poll.clamp(-6, 17)));
            let length = b.at.duration_since(a.at).as_secs_f64();
            if length < nominal / 4.0 {
                continue;
            }
            requests += 1;
            polls += length / nominal;
        }
    }
    (requests, polls)
}

/// What one daemon did in the window.
struct Measured {
    name: &'static str,
    requests: u64,
    replies: u64,
    polls: f64,
    voluntary: u64,
    involuntary: u64,
    /// Timer wakeups counted by strace.
    traced: Option<u64>,
}

/// Descriptors of `pid` that are timerfds.
fn timerfds(pid: u32) -> Vec<String> {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    dir.flatten()
        .filter(|e| fs::read_link(e.path()).is_ok_and(|l| l.to_string_lossy().contains("timerfd")))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// strace attached to every thread of `pid`, logging poller and read returns to `out`.
fn attach_strace(pid: u32, out: &Path) -> Result<std::process::Child, String> {
    std::process::Command::new("strace")
        .args(["-f", "-qq", "-e", "trace=epoll_wait,epoll_pwait,epoll_pwait2,select,pselect6,read"])
        .arg("-o")
        .arg(out)
        .arg("-p")
        .arg(pid.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| format!("spawn strace (is it installed?): {e}"))
}

/// Timer wakeups in an strace log: pollers returning 0 (timeout), and 8-byte reads of one of
/// `timer_fds`.
fn count_timer_wakeups(log: &Path, timer_fds: &[String]) -> u64 {
    let text = fs::read_to_string(log).unwrap_or_default();
    let mut n = 0;
    for line in text.lines() {
        // "PID call(args) = result ..." (with -f every line starts with the thread id).
        let call = line.split_once(' ').map_or(line, |(_, rest)| rest).trim_start();
        let Some((head, result)) = call.rsplit_once(" = ") else { continue };
        let head = head.trim_end();
        let result = result.split_whitespace().next().unwrap_or("");
        let poller = ["epoll_wait(", "epoll_pwait(", "epoll_pwait2(", "select(", "pselect6("]
            .iter()
            .any(|p| head.starts_with(p));
        // A zero timeout is a look, not a sleep: epoll_wait's last argument 0, or a zeroed
        // select timeval.
        let zero_timeout = head.ends_with(", 0)") || head.contains("tv_sec=0, tv_usec=0");
        if poller && result == "0" && !zero_timeout {
            n += 1;
        } else if let Some(args) = head.strip_prefix("read(") {
            let fd = args.split(',').next().unwrap_or("");
            if timer_fds.iter().any(|t| t == fd) && result == "8" {
                n += 1;
            }
        }
    }
    n
}

impl Measured {
    fn requests_per_poll(&self) -> f64 {
        self.requests as f64 / self.polls.max(f64::MIN_POSITIVE)
    }
    fn wakeups_per_request(&self) -> f64 {
        self.voluntary as f64 / self.requests.max(1) as f64
    }
    fn timer_wakeups_per_request(&self) -> f64 {
        self.voluntary.saturating_sub(self.replies) as f64 / self.requests.max(1) as f64
    }
    fn traced_per_request(&self) -> Option<f64> {
        self.traced.map(|n| n as f64 / self.requests.max(1) as f64)
    }
}

/// chronyd as an observe-only client (`-x`) of `servers` on `port`.
fn chronyd_client(
    dir: &Path,
    servers: &[Ipv4Addr],
    port: u16,
    poll: Option<(i8, i8)>,
) -> Result<std::process::Child, String> {
    let d = dir.join("chronyd-client");
    fs::create_dir_all(&d).map_err(|e| e.to_string())?;
    let mut perms = fs::metadata(&d).map_err(|e| e.to_string())?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o750);
    fs::set_permissions(&d, perms).map_err(|e| e.to_string())?;
    let polls = poll.map_or(String::new(), |(a, b)| format!(" minpoll {a} maxpoll {b}"));
    let mut conf = String::from("# chronyd client under benchmark; -x: no clock control\n");
    for s in servers {
        conf.push_str(&format!("server {s} port {port} iburst{polls}\n"));
    }
    conf.push_str(&format!(
        "port 0\ncmdport 0\nbindcmdaddress {d}/chronyd.sock\npidfile {d}/chronyd.pid\n\
         logdir {d}\n",
        d = d.display()
    ));
    fs::write(d.join("chrony.conf"), conf).map_err(|e| e.to_string())?;
    let log = fs::File::create(d.join("chronyd.log")).map_err(|e| e.to_string())?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    nocap(None, Path::new("/usr/sbin/chronyd"))
        .args(["-d", "-x", "-u", "root", "-f"])
        .arg(d.join("chrony.conf"))
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn chronyd: {e}"))
}

/// Runs the benchmark.
pub fn run(
    rntpd: &Path,
    rntpctl: &Path,
    dir: &Path,
    block: &Block,
    a: &WakeupsArgs,
) -> Result<(), String> {
    let poll = match a.poll.as_deref() {
        None => None,
        Some(s) => {
            let (lo, hi) = s.split_once(',').ok_or("--poll wants MIN,MAX")?;
            Some((
                lo.trim().parse::<i8>().map_err(|e| e.to_string())?,
                hi.trim().parse::<i8>().map_err(|e| e.to_string())?,
            ))
        }
    };
    let rntpd_servers: Vec<Ipv4Addr> = (1..=3).map(|h| block.addr(h)).collect();
    let chrony_servers: Vec<Ipv4Addr> = (4..=6).map(|h| block.addr(h)).collect();
    let mut responders = BTreeMap::new();
    for ip in rntpd_servers.iter().chain(&chrony_servers) {
        responders.insert(*ip, Responder::start(SocketAddr::from((*ip, a.port)))?);
    }
    let polls = poll.map_or(String::new(), |(lo, hi)| format!(" minpoll {lo} maxpoll {hi}"));
    let extra: String = rntpd_servers
        .iter()
        .map(|s| format!("server {s} port {} iburst{polls}\n", a.port))
        .collect();
    // rntpd serves nothing here: a listen address nobody queries, as Server::rntpd wants one.
    let listen = SocketAddr::from((block.addr(7), a.port));
    let mut rntpd = Server::rntpd(rntpd, rntpctl, dir, listen, &extra, None)?;
    let mut chronyd = chronyd_client(dir, &chrony_servers, a.port, poll)?;
    let pids = [("rntpd", rntpd.pid()), ("chronyd", chronyd.id())];
    println!(
        "rntpd pid {} polls {:?}, chronyd pid {} polls {:?}, port {}, polling {}",
        pids[0].1,
        rntpd_servers,
        pids[1].1,
        chrony_servers,
        a.port,
        poll.map_or("default".into(), |(lo, hi)| format!("minpoll {lo} maxpoll {hi}"))
    );
    println!(
        "warm-up {} s, then a window of {} s with no control queries",
        a.warmup_secs, a.window_secs
    );
    let result = (|| {
        thread::sleep(Duration::from_secs(a.warmup_secs));
        let mut tracers = Vec::new();
        if a.strace {
            for (name, pid) in &pids {
                let log = dir.join(format!("{name}.strace"));
                tracers.push((attach_strace(*pid, &log)?, log, timerfds(*pid)));
            }
            // Let strace attach before the window opens.
            thread::sleep(Duration::from_secs(2));
        }
        let t0 = Instant::now();
        let before: Vec<(u64, u64)> =
            pids.iter().map(|(_, pid)| switches(*pid)).collect::<Result<_, _>>()?;
        thread::sleep(Duration::from_secs(a.window_secs));
        let after: Vec<(u64, u64)> =
            pids.iter().map(|(_, pid)| switches(*pid)).collect::<Result<_, _>>()?;
        let t1 = Instant::now();
        let mut traced = Vec::new();
        for (mut child, log, fds) in tracers {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGINT,
            );
            let _ = child.wait();
            traced.push(Some(count_timer_wakeups(&log, &fds)));
        }
        let mut out = Vec::new();
        for (i, (name, servers)) in
            [("rntpd", &rntpd_servers), ("chronyd", &chrony_servers)].into_iter().enumerate()
        {
            let logs: Vec<Vec<Seen>> = servers.iter().map(|s| responders[s].requests()).collect();
            let (requests, polls) = polling(&logs, t0, t1);
            // Every request got a reply, so the replies received are the requests in the window.
            let replies: u64 = logs
                .iter()
                .map(|l| l.iter().filter(|s| s.at >= t0 && s.at < t1).count() as u64)
                .sum();
            out.push(Measured {
                name,
                requests,
                replies,
                polls,
                voluntary: after[i].0 - before[i].0,
                involuntary: after[i].1 - before[i].1,
                traced: traced.get(i).copied().flatten(),
            });
        }
        Ok::<_, String>(out)
    })();
    rntpd.stop();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(chronyd.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = chronyd.try_wait() {
            break;
        }
        thread::sleep(Duration::from_millis(50));
    }
    if !matches!(chronyd.try_wait(), Ok(Some(_))) {
        let _ = chronyd.kill();
        let _ = chronyd.wait();
    }
    let out = result?;
    println!();
    let cell = |v: Option<f64>| v.map_or("–".to_string(), |v| format!("{v:.2}"));
    println!(
        "| daemon | requests | poll intervals | requests per poll | wakeups | per request | \
         wakeups − replies per request | timer wakeups per request (strace) | involuntary |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for m in &out {
        println!(
            "| {} | {} | {:.1} | {:.3} | {} | {:.2} | {:.2} | {} | {} |",
            m.name,
            m.requests,
            m.polls,
            m.requests_per_poll(),
            m.voluntary,
            m.wakeups_per_request(),
            m.timer_wakeups_per_request(),
            cell(m.traced_per_request()),
            m.involuntary
        );
    }
    if let [r, c] = &out[..] {
        let traced = match (r.traced_per_request(), c.traced_per_request()) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        println!(
            "| ratio rntpd/chronyd | | | {:.2} | | {:.2} | {:.2} | {} | |",
            r.requests_per_poll() / c.requests_per_poll(),
            r.wakeups_per_request() / c.wakeups_per_request(),
            r.timer_wakeups_per_request() / c.timer_wakeups_per_request().max(f64::MIN_POSITIVE),
            cell(traced)
        );
    }
    Ok(())
}
