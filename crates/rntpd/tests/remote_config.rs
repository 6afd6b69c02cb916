//! Issue 15: authenticated run-time configuration with NTPsec's ntpq, as the 2010 note has it
//! (`ntpq -c ":config server pool.ntp.org"`): `:config pool NAME iburst` adds a pool that
//! fills from real servers, `:config unpeer NAME` removes it with its members, and a request
//! signed with a key other than `controlkey`, or with the right id and another secret, is
//! refused (ntpq: `***Server error code PERMISSION`) and counted.
//!
//! ntpq talks to port 123 only, so rntpd listens on 127.18.Y.1:123; the pool's chronyd servers
//! listen on 127.18.Y.11-14:123 and dnsmasq serves `pool.test`. Addresses: 127.18.Y.0/24.

mod support;

use std::fs;
use std::net::IpAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::{assert_udp_free, run, ChronyServer, Dnsmasq, Net, Rntpd, Shift, TestDir};

static NET: Net = Net::new(18);

const NTPQ: &str = "/opt/ntpsec/usr/bin/ntpq";
const DNS_PORT: u16 = 10053;

/// What ntpq printed.
struct Ntpq {
    stdout: String,
    stderr: String,
}

/// `ntpq -k KEYS -a KEY -c COMMAND ADDR`.
fn ntpq(keys: &Path, key: u32, command: &str, addr: IpAddr) -> Ntpq {
    assert!(Path::new(NTPQ).exists(), "{NTPQ} is not installed: run scripts/install-deps");
    let out = run(Command::new(NTPQ).arg("-k").arg(keys).args([
        "-a",
        &key.to_string(),
        "-c",
        command,
        &addr.to_string(),
    ]));
    Ntpq {
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn key_file(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write keys");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

fn members(peers: &[Value]) -> Vec<&Value> {
    peers.iter().filter(|p| p["kind"] == "pool-member" && p["source"] == "pool.test").collect()
}

fn refused(rntpd: &Rntpd, reason: &str) -> u64 {
    let auth = &rntpd.status_json()["auth"];
    auth["config_refused"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p[0] == reason)
        .and_then(|p| p[1].as_u64())
        .unwrap_or(0)
}

#[test]
fn ntpq_config_adds_a_pool_that_fills_and_unpeer_removes_it_and_its_members() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let servers: Vec<ChronyServer> =
        (11..=14).map(|h| ChronyServer::start(&dir, net.addr(h), 123, Shift::None)).collect();
    let dns = Dnsmasq::start(&dir, net.addr(53), DNS_PORT, 300);
    let addrs: Vec<IpAddr> = (11..=14).map(|h| IpAddr::V4(net.addr(h))).collect();
    dns.set("pool.test", &addrs);
    for s in &servers {
        s.wait_ready();
    }
    let keys = key_file(
        dir.path(),
        "ntp.keys",
        "1 MD5 notTheControlKey\n2 SHA1 6b1a0c3f9e2d4b5a69788796a5b4c3d2e1f00112\n",
    );
    let forged =
        key_file(dir.path(), "forged.keys", "2 SHA1 0000000000000000000000000000000000000000\n");
    let listen = net.sock(1, 123);
    assert_udp_free(listen);
    let rntpd = Rntpd::start(
        &dir,
        &format!(
            "resolver {}\ninterface listen {} port 123\ntos orphan 3\nkeys {}\ntrustedkey 1 2\ncontrolkey 2\n",
            dns.addr(),
            listen.ip(),
            keys.display()
        ),
    );
    let server = listen.ip();

    // A trusted key that is not the control key, and the control key's id with another
    // secret: refused, nothing added, each counted.
    let wrong = ntpq(&keys, 1, ":config pool pool.test iburst", server);
    assert!(
        wrong.stderr.contains("PERMISSION"),
        "stdout {}\nstderr {}",
        wrong.stdout,
        wrong.stderr
    );
    let bad = ntpq(&forged, 2, ":config pool pool.test iburst", server);
    assert!(bad.stderr.contains("PERMISSION"), "stdout {}\nstderr {}", bad.stdout, bad.stderr);
    assert_eq!((refused(&rntpd, "wrong_key"), refused(&rntpd, "auth_bad_mac")), (1, 1));
    assert!(rntpd.peers_json().is_empty());

    // The control key: the pool is added and fills with the four servers.
    let ok = ntpq(&keys, 2, ":config pool pool.test iburst", server);
    assert_eq!(ok.stdout.trim(), "Config Succeeded", "stderr: {}", ok.stderr);
    assert!(!ok.stderr.contains("AUTH"), "ntpq verified the signed answer: {}", ok.stderr);
    rntpd.wait_for_peers(Duration::from_secs(20), |peers| {
        let m = members(peers);
        let reachable = m.iter().filter(|p| p["reach"].as_u64().unwrap_or(0) != 0).count();
        if reachable == 4 {
            Ok(())
        } else {
            Err(format!("{reachable} of {} members reachable", m.len()))
        }
    });
    let sources = rntpd.ctl_ok(&["sources", "--json"]);
    assert!(sources.contains("ntpq :config from"), "{sources}");

    // A typo is reported at its column and changes nothing.
    let typo = ntpq(&keys, 2, ":config server 192.0.2.1 ibrust", server);
    assert!(typo.stdout.contains("column 18 syntax error"), "{}", typo.stdout);

    // unpeer removes the pool and every member.
    let gone = ntpq(&keys, 2, ":config unpeer pool.test", server);
    assert_eq!(gone.stdout.trim(), "Config Succeeded", "stderr: {}", gone.stderr);
    let peers = rntpd.peers_json();
    assert!(peers.is_empty(), "{peers:?}");
    let history = rntpd.ctl_ok(&["history", "--json"]);
    assert_eq!(history.matches("\"removed\"").count(), 4, "{history}");
    let status = rntpd.status_json();
    assert_eq!(status["auth"]["config_accepted"], 2, "{}", status["auth"]);
    drop(servers);
}
