//! The load generator: valid client requests at a controlled rate from many source ports,
//! every reply validated and timed, and the search for the highest rate a server sustains.
//!
//! How one measurement step works:
//! * `sockets` UDP sockets (64 by default), each bound to the same loopback source address on
//!   its own ephemeral port and connected to the server (the kernel then hands each only its
//!   server's replies, and `send` skips the route lookup). Requests go round-robin, so request
//!   `seq` always leaves from socket `seq % sockets`.
//! * A token bucket paces the sends: request `seq` is due at `seq / rate` seconds after the
//!   step starts; the loop sends whatever is due, in batches of at most [`SEND_BATCH`] so it
//!   also gets to read replies. Whether the generator kept up is measured (the achieved send
//!   rate), not assumed: a step whose sends fell behind is flagged generator-limited.
//! * Each request's transmit timestamp is a nonce from a keyed permutation of `seq`
//!   ([`Nonces`], new keys each step). A reply counts only if it is mode 4, version 4,
//!   stratum 1..=15, arrived on the socket `seq` left from, and its origin decodes to a `seq`
//!   that was sent and not yet answered. Everything else is counted as invalid, duplicate or
//!   kiss-o'-death.
//! * Latency is per nonce: the wall clock just before `send` to the kernel's receive
//!   timestamp (SO_TIMESTAMPNS) of the reply. The kernel stamp is taken when the reply is
//!   queued on our socket, so time the generator spends sending a batch does not inflate it.
//! * After the last send the step waits up to `drain` for stragglers; loss is
//!   1 − valid/sent.
//!
//! Single-threaded on purpose: it is pinned to its own core, and one thread that both sends and
//! receives keeps the per-packet cost at one `send` plus about one `recvmsg`.

use crate::ntp::{self, Nonces, Reply, Rng};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags};
use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use std::io::{ErrorKind, IoSliceMut};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most requests sent in one go before the loop reads replies again.
const SEND_BATCH: usize = 32;
/// Most datagrams read from one ready socket per loop iteration.
const RECV_BATCH: usize = 16;
/// A step counts as generator-limited if it sent at less than this fraction of the target.
const KEEP_UP: f64 = 0.97;

/// Wall-clock now in ns since 1970, comparable with SO_TIMESTAMPNS.
fn realtime_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

/// What one step measured.
#[derive(Clone, Debug)]
pub struct Step {
    /// Requested rate, req/s.
    pub rate: f64,
    /// Requests sent.
    pub sent: u64,
    /// Valid replies to them.
    pub valid: u64,
    /// Kiss-o'-death replies (never expected in the throughput setup).
    pub kisses: u64,
    /// Datagrams that were not a valid reply to an outstanding request of this step.
    pub invalid: u64,
    /// Second replies to an already answered request.
    pub duplicates: u64,
    /// Failed `send`/`recvmsg` calls other than "would block".
    pub errors: u64,
    /// The rate the generator actually achieved.
    pub send_rate: f64,
    /// Median latency, µs.
    pub p50_us: f64,
    /// 99th percentile latency, µs.
    pub p99_us: f64,
    /// CPU time the server used during the step (all its threads), ns; 0 if not measured.
    pub server_cpu_ns: u64,
    /// Share of the server's CPU that *other* processes (and the hypervisor, as steal) took
    /// during the step, 0..1: what the shared machine did to the measurement.
    pub foreign_load: f64,
}

impl Step {
    /// 1 − valid/sent.
    pub fn loss(&self) -> f64 {
        if self.sent == 0 {
            return 1.0;
        }
        1.0 - self.valid as f64 / self.sent as f64
    }

    /// Server CPU time per answered request, µs (NaN if not measured).
    pub fn cpu_us_per_reply(&self) -> f64 {
        if self.server_cpu_ns == 0 || self.valid == 0 {
            return f64::NAN;
        }
        self.server_cpu_ns as f64 / 1000.0 / self.valid as f64
    }

    /// Whether the generator fell behind the requested rate (then the step says nothing about
    /// the server).
    pub fn generator_limited(&self) -> bool {
        self.send_rate < self.rate * KEEP_UP
    }
}

/// The load generator: sockets, epoll set and buffers, reused across steps.
pub struct Generator {
    socks: Vec<UdpSocket>,
    epoll: Epoll,
    rng: Rng,
}

impl Generator {
    /// `sockets` sockets bound to `src` (ephemeral ports), connected to `server`.
    pub fn new(src: Ipv4Addr, server: SocketAddr, sockets: usize) -> Result<Generator, String> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC).map_err(|e| e.to_string())?;
        let mut socks = Vec::with_capacity(sockets);
        for i in 0..sockets {
            let s = UdpSocket::bind(SocketAddrV4::new(src, 0)).map_err(|e| e.to_string())?;
            s.connect(server).map_err(|e| e.to_string())?;
            s.set_nonblocking(true).map_err(|e| e.to_string())?;
            setsockopt(&s, sockopt::ReceiveTimestampns, &true).map_err(|e| e.to_string())?;
            epoll
                .add(&s, EpollEvent::new(EpollFlags::EPOLLIN, i as u64))
                .map_err(|e| e.to_string())?;
            socks.push(s);
        }
        Ok(Generator { socks, epoll, rng: Rng::from_os() })
    }

    /// Reads and discards whatever is queued (late replies of an earlier step).
    fn flush(&mut self) {
        let mut buf = [0u8; 512];
        for s in &self.socks {
            while s.recv(&mut buf).is_ok() {}
        }
    }

    /// Runs one step: `rate` req/s for `duration`, then waits up to `drain` for stragglers.
    pub fn run_step(&mut self, rate: f64, duration: Duration, drain: Duration) -> Step {
        self.flush();
        let nonces = Nonces::new(&mut self.rng);
        let n = (rate * duration.as_secs_f64()).ceil().max(1.0) as usize;
        let nsock = self.socks.len();
        let mut sent_ns = vec![0u64; n];
        let mut lat_ns = vec![u32::MAX; n];
        let (mut sent, mut valid, mut kisses, mut invalid, mut duplicates, mut errors) =
            (0usize, 0u64, 0u64, 0u64, 0u64, 0u64);
        let mut events = vec![EpollEvent::empty(); nsock];
        let mut buf = [0u8; 512];
        let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
        let start = Instant::now();
        let mut send_end = duration;
        loop {
            let elapsed = start.elapsed();
            if sent < n {
                let due = ((elapsed.as_secs_f64() * rate) as usize + 1).min(n);
                let mut batch = 0;
                while sent < due && batch < SEND_BATCH {
                    let req = ntp::request(nonces.encode(sent as u64));
                    sent_ns[sent] = realtime_ns();
                    match self.socks[sent % nsock].send(&req) {
                        Ok(_) => {}
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                        // E.g. ECONNREFUSED left by an ICMP error: the request is lost.
                        Err(_) => errors += 1,
                    }
                    sent += 1;
                    batch += 1;
                }
                if sent == n {
                    send_end = start.elapsed();
                }
            } else if valid as usize + kisses as usize >= n || elapsed > send_end + drain {
                break;
            }
            // Block only when nothing is due within a millisecond (epoll's resolution).
            let timeout_ms: u16 = if sent < n {
                let next_due = sent as f64 / rate;
                ((next_due - start.elapsed().as_secs_f64()) * 1000.0).clamp(0.0, 100.0) as u16
            } else {
                1
            };
            let ready = match self.epoll.wait(&mut events, timeout_ms) {
                Ok(k) => k,
                Err(nix::errno::Errno::EINTR) => 0,
                Err(e) => panic!("epoll_wait: {e}"),
            };
            for ev in &events[..ready] {
                let i = ev.data() as usize;
                let fd = self.socks[i].as_raw_fd();
                for _ in 0..RECV_BATCH {
                    let mut iov = [IoSliceMut::new(&mut buf)];
                    let (len, stamp) = match recvmsg::<()>(
                        fd,
                        &mut iov,
                        Some(&mut cmsg),
                        MsgFlags::MSG_DONTWAIT,
                    ) {
                        Ok(msg) => {
                            let stamp = msg
                                .cmsgs()
                                .ok()
                                .and_then(|mut c| {
                                    c.find_map(|m| match m {
                                        ControlMessageOwned::ScmTimestampns(ts) => Some(
                                            ts.tv_sec() as u64 * 1_000_000_000
                                                + ts.tv_nsec() as u64,
                                        ),
                                        _ => None,
                                    })
                                })
                                .unwrap_or_else(realtime_ns);
                            (msg.bytes, stamp)
                        }
                        Err(nix::errno::Errno::EAGAIN) => break,
                        Err(_) => {
                            errors += 1;
                            break;
                        }
                    };
                    match ntp::parse_reply(&buf[..len]) {
                        Reply::Time { origin, .. } => {
                            let seq = nonces.decode(origin);
                            if seq >= sent as u64 || seq as usize % nsock != i {
                                invalid += 1;
                            } else if lat_ns[seq as usize] != u32::MAX {
                                duplicates += 1;
                            } else {
                                let d = stamp.saturating_sub(sent_ns[seq as usize]);
                                lat_ns[seq as usize] = d.min(u64::from(u32::MAX - 1)) as u32;
                                valid += 1;
                            }
                        }
                        Reply::Kiss { .. } => kisses += 1,
                        Reply::Invalid => invalid += 1,
                    }
                }
            }
        }
        let mut lats: Vec<u32> = lat_ns.into_iter().filter(|&l| l != u32::MAX).collect();
        lats.sort_unstable();
        let pct = |p: f64| -> f64 {
            if lats.is_empty() {
                return f64::NAN;
            }
            let i = ((lats.len() as f64 * p).ceil() as usize).clamp(1, lats.len()) - 1;
            f64::from(lats[i]) / 1000.0
        };
        Step {
            rate,
            sent: sent as u64,
            valid,
            kisses,
            invalid,
            duplicates,
            errors,
            send_rate: sent as f64 / send_end.as_secs_f64().max(1e-9),
            p50_us: pct(0.50),
            p99_us: pct(0.99),
            server_cpu_ns: 0,
            foreign_load: 0.0,
        }
    }
}

/// Search settings.
#[derive(Clone, Debug)]
pub struct SearchParams {
    /// First rate tried, req/s.
    pub start_rate: f64,
    /// Never try more than this.
    pub max_rate: f64,
    /// Length of each step.
    pub step: Duration,
    /// Wait for stragglers after each step.
    pub drain: Duration,
    /// Loss a passing step may have (0.001 = 0.1 %).
    pub max_loss: f64,
    /// Stop bisecting when hi/lo is below this.
    pub precision: f64,
    /// Tries per rate: a rate fails only if every try loses too much, because the 2-core
    /// machine is shared and one stall from another process can overflow a socket buffer.
    pub tries: u32,
    /// A failed step during which other processes took more than this share of the server's
    /// CPU says nothing about the server: it is repeated without counting as a try (at most
    /// [`NOISY_RETRIES`] times per rate).
    pub max_foreign: f64,
}

/// Most uncounted repeats of a rate whose failures coincided with foreign load.
pub const NOISY_RETRIES: u32 = 3;

/// Where a search is.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Doubling from the start rate until a rate fails.
    Doubling(f64),
    /// Bisecting between the highest passing and the lowest failing rate.
    Bisect {
        lo: f64,
        hi: f64,
    },
    Done,
}

/// The search for the highest rate with loss below `max_loss` for one server: doubling from
/// `start_rate` until a rate fails, then bisection. A state machine (ask [`Search::next_rate`],
/// run the step, [`Search::record`] it), so the caller can interleave the searches of several
/// servers step by step: background load on the shared machine then hits all of them alike.
#[derive(Clone, Debug)]
pub struct Search {
    p: SearchParams,
    phase: Phase,
    /// Failed tries at the current rate.
    failures: u32,
    /// Uncounted (noisy) failures at the current rate.
    noisy: u32,
    /// The last passing step (its rate is the result), if any step passed.
    pub best: Option<Step>,
    /// True if the result is a lower bound because the generator could not go faster.
    pub generator_limited: bool,
    /// Every step, in order.
    pub steps: Vec<Step>,
}

impl Search {
    /// A search that has not run any step yet.
    pub fn new(p: SearchParams) -> Search {
        let phase = Phase::Doubling(p.start_rate);
        Search {
            p,
            phase,
            failures: 0,
            noisy: 0,
            best: None,
            generator_limited: false,
            steps: Vec::new(),
        }
    }

    /// The rate to run next, or `None` when the search is over.
    pub fn next_rate(&mut self) -> Option<f64> {
        match self.phase {
            Phase::Doubling(rate) if rate <= self.p.max_rate => Some(rate),
            Phase::Bisect { lo, hi } if hi / lo > self.p.precision => {
                Some(((lo + hi) / 2.0).round())
            }
            _ => {
                self.phase = Phase::Done;
                None
            }
        }
    }

    /// Whether a step passes.
    pub fn passes(&self, s: &Step) -> bool {
        s.loss() < self.p.max_loss && !s.generator_limited()
    }

    /// Takes the result of the step run at the rate [`next_rate`](Self::next_rate) gave.
    pub fn record(&mut self, s: Step) {
        let pass = self.passes(&s);
        let rate = s.rate;
        let limited = s.generator_limited();
        let foreign = s.foreign_load;
        self.steps.push(s.clone());
        if limited {
            // Nothing more to learn about the server: it kept up with all we could send.
            self.generator_limited = true;
            self.phase = Phase::Done;
            return;
        }
        if pass {
            self.failures = 0;
            self.noisy = 0;
            self.best = Some(s);
            self.phase = match self.phase {
                Phase::Doubling(_) => Phase::Doubling(rate * 2.0),
                Phase::Bisect { hi, .. } => Phase::Bisect { lo: rate, hi },
                Phase::Done => Phase::Done,
            };
            return;
        }
        if foreign > self.p.max_foreign && self.noisy < NOISY_RETRIES {
            self.noisy += 1;
            return; // the neighbours, not the server: same rate again, uncounted
        }
        self.failures += 1;
        if self.failures < self.p.tries {
            return; // try the same rate again
        }
        self.failures = 0;
        self.noisy = 0;
        self.phase = match self.phase {
            Phase::Doubling(_) if self.best.is_none() => Phase::Done, // even the start failed
            Phase::Doubling(_) => Phase::Bisect { lo: rate / 2.0, hi: rate },
            Phase::Bisect { lo, .. } => Phase::Bisect { lo, hi: rate },
            Phase::Done => Phase::Done,
        };
    }
}

/// CPU time used so far by every thread of process `pid`, in ns (/proc/PID/task/*/schedstat:
/// nanosecond resolution, unlike the tick-based utime/stime).
pub fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Busy time of one CPU so far, in ns: every /proc/stat column but idle and iowait (steal
/// included: time the hypervisor gave to someone else). Ticks are USER_HZ, 100 on Linux.
pub fn cpu_busy_ns(cpu: usize) -> u64 {
    const NS_PER_TICK: u64 = 10_000_000;
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let tag = format!("cpu{cpu} ");
    let Some(line) = stat.lines().find(|l| l.starts_with(&tag)) else { return 0 };
    let v: Vec<u64> = line.split_whitespace().skip(1).filter_map(|x| x.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let busy: u64 =
        v.iter().take(8).enumerate().filter(|(i, _)| *i != 3 && *i != 4).map(|(_, x)| x).sum();
    busy * NS_PER_TICK
}
