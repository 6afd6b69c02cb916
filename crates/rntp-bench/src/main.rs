//! rntp-bench: benchmarks of rntpd's server mode against real load, on loopback only.
//!
//! * `throughput`: the highest request rate rntpd answers with < 0.1 % loss, next to chronyd
//!   measured the same way on the same core, and the ratio of the two.
//! * `flood`: a million malformed requests and a million requests from spoofed sources at
//!   rntpd; memory must stay bounded and a legitimate client must still be served.
//! * `mode6-flood`: a million mode 6 (ntpq) queries from 10^4 spoofed sources, non-local (in
//!   process) and loopback (at the daemon): octets out never above octets in for non-local
//!   sources, memory flat, time still served.
//! * `dns-stall`: server-mode latency and association timing while 60 name lookups hang on a
//!   slow or silent DNS server, against idle.
//! * `wakeups`: an idle client's cost, rntpd next to chronyd in the same run: timer wakeups and
//!   requests per poll interval.
//!
//! These are benchmarks, not tests: they take minutes, print numbers and their ratios, and
//! make no pass/fail claim about speed (docs/benchmarks.md has the commands and the last
//! figures). Build with `cargo build --release -p rntpd -p rntpctl -p rntp-bench` first: the
//! servers measured are the release binaries next to this one.
//!
//! Safety: traffic goes only to 127.0.0.0/8; every loop is bounded in count and time; every
//! server runs without CAP_SYS_TIME and with its own no-clock option, and is stopped by pid.
#![forbid(unsafe_code)]

mod dns_stall;
mod flood;
mod load;
mod mode6_flood;
use rntp_testkit::ntp;
mod procs;
mod wakeups;

use clap::{Parser, Subcommand};
use load::{Generator, Search, SearchParams};
use procs::{Block, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Benchmarks for rntpd's server mode (loopback only; never touches the clock).
#[derive(Debug, Parser)]
#[command(name = "rntp-bench", about)]
struct Args {
    /// rntpd binary [default: `rntpd` next to this binary].
    #[arg(long, global = true)]
    rntpd: Option<PathBuf>,
    /// rntpctl binary [default: `rntpctl` next to this binary].
    #[arg(long, global = true)]
    rntpctl: Option<PathBuf>,
    /// Keep the work dir (configs, logs) instead of deleting it.
    #[arg(long, global = true)]
    keep: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Max rate with < 0.1 % loss, rntpd vs chronyd on one core, load from the other.
    Throughput(ThroughputArgs),
    /// Malformed and spoofed-source floods at rntpd: memory, rate table, service afterwards.
    Flood(flood::FloodArgs),
    /// A million mode 6 (ntpq) queries from 10^4 spoofed sources: amplification, memory,
    /// service.
    Mode6Flood(mode6_flood::Mode6FloodArgs),
    /// Latency and association timing while DNS answers are slow or never come, vs idle.
    DnsStall(dns_stall::DnsStallArgs),
    /// Timer wakeups and requests per poll interval of an idle client, rntpd vs chronyd.
    Wakeups(wakeups::WakeupsArgs),
}

#[derive(Debug, clap::Args)]
struct ThroughputArgs {
    /// CPU both servers are pinned to.
    #[arg(long, default_value_t = 1)]
    server_cpu: usize,
    /// CPU the load generator is pinned to.
    #[arg(long, default_value_t = 0)]
    gen_cpu: usize,
    /// Client sockets (source ports).
    #[arg(long, default_value_t = 64)]
    sockets: usize,
    /// UDP port both servers listen on (each on its own address).
    #[arg(long, default_value_t = 12390)]
    port: u16,
    /// Seconds per measurement step.
    #[arg(long, default_value_t = 2.0)]
    step_secs: f64,
    /// Bound on each server's search, seconds.
    #[arg(long, default_value_t = 120)]
    budget_secs: u64,
    /// Tries per rate before it counts as failed.
    #[arg(long, default_value_t = 2)]
    tries: u32,
    /// First rate tried, req/s.
    #[arg(long, default_value_t = 5000.0)]
    start_rate: f64,
    /// Highest rate tried, req/s.
    #[arg(long, default_value_t = 2_000_000.0)]
    max_rate: f64,
    /// Measure only this server (rntpd or chronyd).
    #[arg(long)]
    only: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rntp-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<(), String> {
    print_machine();
    let work = WorkDir::new(args.keep)?;
    let block = Block::allocate()?;
    match args.cmd {
        Cmd::Throughput(t) => throughput(&args.rntpd, &args.rntpctl, &work, &block, &t),
        Cmd::Flood(f) => {
            let rntpd = procs::sibling_binary(args.rntpd, "rntpd")?;
            let rntpctl = procs::sibling_binary(args.rntpctl, "rntpctl")?;
            flood::run(&rntpd, &rntpctl, &work.path, &block, &f)
        }
        Cmd::Mode6Flood(m) => {
            let rntpd = procs::sibling_binary(args.rntpd, "rntpd")?;
            let rntpctl = procs::sibling_binary(args.rntpctl, "rntpctl")?;
            mode6_flood::run(&rntpd, &rntpctl, &work.path, &block, &m)
        }
        Cmd::DnsStall(d) => {
            let rntpd = procs::sibling_binary(args.rntpd, "rntpd")?;
            let rntpctl = procs::sibling_binary(args.rntpctl, "rntpctl")?;
            dns_stall::run(&rntpd, &rntpctl, &work.path, &block, &d)
        }
        Cmd::Wakeups(w) => {
            let rntpd = procs::sibling_binary(args.rntpd, "rntpd")?;
            let rntpctl = procs::sibling_binary(args.rntpctl, "rntpctl")?;
            wakeups::run(&rntpd, &rntpctl, &work.path, &block, &w)
        }
    }
}

/// The machine the numbers come from.
fn print_machine() {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name").map(|r| r.trim_start_matches([' ', '\t', ':'])))
        .unwrap_or("?");
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cpus} CPUs ({model})");
}

fn throughput(
    rntpd: &Option<PathBuf>,
    rntpctl: &Option<PathBuf>,
    work: &WorkDir,
    block: &Block,
    t: &ThroughputArgs,
) -> Result<(), String> {
    procs::pin_self(t.gen_cpu)?;
    let want = |name: &str| t.only.as_deref().is_none_or(|o| o == name);
    let client = block.addr(3);
    let mut servers: Vec<Server> = Vec::new();
    if want("rntpd") {
        let bin = procs::sibling_binary(rntpd.clone(), "rntpd")?;
        let ctl = procs::sibling_binary(rntpctl.clone(), "rntpctl")?;
        let addr = SocketAddr::from((block.addr(1), t.port));
        // No rate limit (plain `restrict default`) and a synchronized orphan stratum, as
        // chronyd's `local stratum 1` without `ratelimit`.
        let extra = "restrict default\ntos orphan 3\n";
        servers.push(Server::rntpd(&bin, &ctl, &work.path, addr, extra, Some(t.server_cpu))?);
    }
    if want("chronyd") {
        let addr = SocketAddr::from((block.addr(2), t.port));
        servers.push(Server::chronyd(&work.path, addr, Some(t.server_cpu))?);
    }
    for s in &mut servers {
        s.wait_ready(client)?;
        println!("{} pid {} ready on {} (pinned to CPU {})", s.name, s.pid(), s.addr, t.server_cpu);
    }
    println!(
        "load: {} sockets from {client}, pinned to CPU {}; steps of {} s; pass = loss < 0.1 %",
        t.sockets, t.gen_cpu, t.step_secs
    );
    let params = SearchParams {
        start_rate: t.start_rate,
        max_rate: t.max_rate,
        step: Duration::from_secs_f64(t.step_secs),
        drain: Duration::from_millis(300),
        max_loss: 0.001,
        precision: 1.05,
        tries: t.tries,
        max_foreign: 0.05,
    };
    let budget = Duration::from_secs(t.budget_secs) * servers.len() as u32;
    let mut runs = Vec::new();
    for s in &servers {
        let generator = Generator::new(client, s.addr, t.sockets)?;
        runs.push((s, generator, Search::new(params.clone())));
    }
    println!(
        "{:<8} {:>9} {:>9} {:>8} {:>8} {:>9} {:>9} {:>8} {:>7} {:>6}",
        "server",
        "rate",
        "sent/s",
        "loss %",
        "p50 µs",
        "p99 µs",
        "cpu µs/r",
        "others %",
        "invalid",
        "pass"
    );
    // Interleaved: one step of each server's search in turn, so that load from other
    // processes on this shared machine falls on both alike.
    let start = Instant::now();
    let mut out_of_time = false;
    loop {
        let mut progressed = false;
        for (server, generator, search) in &mut runs {
            let Some(rate) = search.next_rate() else { continue };
            if start.elapsed() + params.step + params.drain > budget {
                out_of_time = true;
                break;
            }
            let cpu0 = load::cpu_ns(server.pid());
            let busy0 = load::cpu_busy_ns(t.server_cpu);
            let t0 = Instant::now();
            let mut st = generator.run_step(rate, params.step, params.drain);
            let wall = t0.elapsed().as_nanos() as f64;
            st.server_cpu_ns = load::cpu_ns(server.pid()).saturating_sub(cpu0);
            let busy = load::cpu_busy_ns(t.server_cpu).saturating_sub(busy0);
            st.foreign_load = (busy.saturating_sub(st.server_cpu_ns) as f64 / wall).clamp(0.0, 1.0);
            let verdict = if st.generator_limited() {
                "GEN"
            } else if search.passes(&st) {
                "ok"
            } else if st.foreign_load > params.max_foreign {
                "NOISY"
            } else {
                "FAIL"
            };
            println!(
                "{:<8} {:>9.0} {:>9.0} {:>8.3} {:>8.1} {:>9.1} {:>9.2} {:>8.1} {:>7} {:>6}",
                server.name,
                st.rate,
                st.send_rate,
                st.loss() * 100.0,
                st.p50_us,
                st.p99_us,
                st.cpu_us_per_reply(),
                st.foreign_load * 100.0,
                st.invalid + st.duplicates + st.kisses + st.errors,
                verdict
            );
            search.record(st);
            progressed = true;
        }
        if !progressed || out_of_time {
            break;
        }
    }
    println!(
        "\n{:<8} {:>12} {:>9} {:>9} {:>12}  note",
        "server", "max req/s", "p50 µs", "p99 µs", "cpu µs/req"
    );
    // CPU per request is compared at the highest rate every server passed: the cost per
    // request falls as the rate rises (fewer wake-ups per request), so only equal rates compare.
    let passed_at = |search: &Search, rate: f64| {
        search.steps.iter().find(|s| s.rate == rate && search.passes(s)).cloned()
    };
    let common = runs
        .first()
        .map(|(_, _, first)| {
            first
                .steps
                .iter()
                .map(|s| s.rate)
                .filter(|&r| runs.iter().all(|(_, _, search)| passed_at(search, r).is_some()))
                .fold(0.0, f64::max)
        })
        .unwrap_or(0.0);
    let mut summary = Vec::new();
    for (server, _, search) in &runs {
        let cpu = passed_at(search, common).map_or(f64::NAN, |s| s.cpu_us_per_reply());
        let note = match (search.generator_limited, out_of_time && search.best.is_some()) {
            (true, _) => "lower bound: the load generator could not go faster",
            (_, true) => "search cut short by the time budget",
            _ => "",
        };
        match &search.best {
            Some(b) => println!(
                "{:<8} {:>12.0} {:>9.1} {:>9.1} {:>12.2}  {note}",
                server.name, b.rate, b.p50_us, b.p99_us, cpu
            ),
            None => println!("{:<8} {:>12} no step passed {note}", server.name, "-"),
        }
        summary.push((server.name, search.best.as_ref().map(|b| b.rate), cpu));
    }
    println!(
        "(cpu µs/req: server CPU time per reply at {common:.0} req/s, the highest rate all passed)"
    );
    let find = |n: &str| summary.iter().find(|(name, _, _)| *name == n).copied();
    if let (Some((_, Some(r), r_cpu)), Some((_, Some(c), c_cpu))) = (find("rntpd"), find("chronyd"))
    {
        println!("\nrntpd/chronyd max-rate ratio: {:.2} (target >= 1.0)", r / c);
        println!(
            "chronyd/rntpd CPU-per-request ratio at {common:.0} req/s: {:.2} (> 1 = rntpd needs \
             less CPU per request)",
            c_cpu / r_cpu
        );
    }
    Ok(())
}

/// The benchmark's scratch dir under the system temp dir; deleted on drop unless kept.
pub struct WorkDir {
    /// Its path.
    pub path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn new(keep: bool) -> Result<WorkDir, String> {
        let path = std::env::temp_dir().join(format!("rntp-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(WorkDir { path, keep })
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            println!("work dir kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
