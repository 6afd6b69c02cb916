//! NTPsec ntpd as a pure NTP server in orphan mode on ADDR:123 (a second, independent server
//! implementation next to chronyd).
//!
//! Why the config looks the way it does (testbed.md §1c, all verified):
//! * Orphan mode (`tos orphan 3 orphanwait 1`) is the only way to answer synchronized (leap 0,
//!   stratum 3) without an upstream; a LOCAL refclock answers leap 3 under `disable ntp`.
//! * NTPsec binds only addresses that exist on an interface, hence the /32 on lo (removed on drop),
//!   and it can only listen on port 123.
//! * By default it binds every loopback address and would steal other instances' addresses, so
//!   everything is ignored before `interface listen ADDR` (the last matching rule wins).
//! * Its default restrict is `noquery limited`: loopback is opened so ntpq works and no rate limit
//!   applies.
//!
//! Clock safety: NTPsec has no no-clock-control switch. `disable ntp` + `disable kernel` keep the
//! discipline open, but it still writes the kernel PLL state twice at startup; running without
//! CAP_SYS_TIME ([`nocap`]) makes those writes fail with EPERM. Never run it otherwise.
//!
//! Not covered: NTPsec as a client (it rejects 127/8 servers), KoD configuration.

use super::{assert_udp_free, lo_has_addr, nocap, ntp, run, unique_subdir, Daemon};
use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const NTPD: &str = "/opt/ntpsec/usr/sbin/ntpd";

/// Bound for [`NtpsecServer::wait_ready`]: orphan mode starts about 2 s after ntpd.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// The stratum an orphan parent answers with (`tos orphan 3`).
pub const ORPHAN_STRATUM: u8 = 3;

/// A running NTPsec ntpd; stopped by pid and its address removed from lo on drop.
pub struct NtpsecServer {
    addr: Ipv4Addr,
    dir: PathBuf,
    daemon: Daemon,
}

impl NtpsecServer {
    /// Adds `addr`/32 to lo and starts ntpd serving on `addr`:123, with its files in a new
    /// subdir of `dir`. Returns at once; call [`wait_ready`](Self::wait_ready) before use.
    /// Needs root (CAP_NET_ADMIN for the address, port 123).
    pub fn start(dir: impl AsRef<Path>, addr: Ipv4Addr) -> NtpsecServer {
        NtpsecServer::start_with(dir, addr, "")
    }

    /// [`NtpsecServer::start`] with `extra` lines added to its ntp.conf (e.g. `keys`).
    pub fn start_with(dir: impl AsRef<Path>, addr: Ipv4Addr, extra: &str) -> NtpsecServer {
        assert_udp_free(SocketAddr::from((addr, 123)));
        let d = unique_subdir(dir.as_ref(), &format!("ntpsec-{addr}"));
        fs::create_dir(d.join("stats")).expect("create stats dir");
        // An address already there is a leftover of a crashed run that held the same block
        // lease (the lease guarantees nobody else uses it now): adopt it, remove it on drop.
        if !lo_has_addr(addr) {
            let out =
                run(Command::new("ip").args(["addr", "add", &format!("{addr}/32"), "dev", "lo"]));
            assert!(
                out.status.success(),
                "ip addr add {addr}/32 dev lo failed (NTPsec tests need root): {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let conf = format!(
            "# NTPsec ntpd pure server on {addr}:123; no clock control; orphan parent => leap 0, stratum 3\n\
             disable ntp\n\
             disable kernel\n\
             tos orphan {ORPHAN_STRATUM} orphanwait 1\n\
             interface ignore wildcard\n\
             interface ignore all\n\
             interface ignore ipv6\n\
             interface ignore 127.0.0.0/8\n\
             interface listen {addr}\n\
             restrict default\n\
             restrict 127.0.0.0 mask 255.0.0.0\n\
             restrict ::1\n\
             statsdir {}/stats/\n{extra}",
            d.display()
        );
        let conf_path = d.join("ntp.conf");
        fs::write(&conf_path, conf).expect("write ntp.conf");
        let log = d.join("ntpd.log");
        // -n: no fork, so the harness owns (and reaps) the process. No -u: dropping root would
        // need CAP_SYS_TIME.
        let mut cmd = nocap(NTPD);
        cmd.arg("-n").arg("-c").arg(&conf_path).arg("-l").arg(&log);
        cmd.arg("-p").arg(d.join("ntpd.pid"));
        let daemon = Daemon::spawn("ntpd", cmd, &d.join("ntpd.out"), &[&log]);
        NtpsecServer { addr, dir: d, daemon }
    }

    /// Waits (bounded) until it answers leap 0 at the orphan stratum with a sub-millisecond
    /// offset; panics with its log otherwise.
    pub fn wait_ready(&self) -> &NtpsecServer {
        let sock = self.addr();
        let res = super::wait_until(
            &format!("ntpd on {sock} to be an orphan parent"),
            READY_TIMEOUT,
            || {
                self.daemon.assert_running();
                match ntp::query(sock, Duration::from_millis(500)) {
                    Ok(r)
                        if r.leap == 0 && r.stratum == ORPHAN_STRATUM && r.offset.abs() < 0.001 =>
                    {
                        Ok(())
                    }
                    Ok(r) => Err(format!("last reply {r:?}")),
                    Err(e) => Err(format!("last query: {e}")),
                }
            },
        );
        if let Err(e) = res {
            panic!("{e}\n{}", self.logs());
        }
        self
    }

    /// Where it listens (always port 123).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((self.addr, 123))
    }

    /// Its files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.daemon.pid()
    }

    /// Its log tails, for panic messages.
    pub fn logs(&self) -> String {
        self.daemon.logs()
    }
}

impl Drop for NtpsecServer {
    fn drop(&mut self) {
        // Stop first: the address must not vanish under a running ntpd.
        self.daemon.stop(super::STOP_GRACE);
        let out = run(Command::new("ip").args([
            "addr",
            "del",
            &format!("{}/32", self.addr),
            "dev",
            "lo",
        ]));
        if !out.status.success() && lo_has_addr(self.addr) {
            eprintln!(
                "could not remove {}/32 from lo: {}",
                self.addr,
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}
