//! Issue 15: symmetric keys against implementations nobody here wrote, both directions, for
//! MD5, SHA1 and AES-128-CMAC, and a wrong key on both sides:
//!
//! * rntpd client → chronyd 4.3 server (`keyfile`) and NTPsec 1.2.2 server (`keys`,
//!   `trustedkey`): keys 1-3 are used; key 4, whose secret differs, gets no reply (neither
//!   answers a bad MAC) and each server counts the failure; an rntpd server with a differing
//!   key 4 answers with a crypto-NAK, which the rntpd client counts.
//! * chronyd client (`chronyd -Q ... key N`) and NTPsec's `ntpdig -k KEYFILE -a N` → rntpd
//!   server: keys 1-3 get authenticated time; key 4 (other secret) and key 5 (unknown to the
//!   server) do not, and rntpd counts both by reason.
//!
//! NTPsec cannot be a client of a loopback server (testbed.md §1c), so ntpdig stands in for
//! it. Nothing here changes the clock (support/: `--observe`, no CAP_SYS_TIME). Addresses:
//! 127.17.Y.0/24.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use support::{
    assert_udp_free, nocap, ntp, run, ChronyServer, Net, NtpsecServer, Rntpd, Shift, TestDir,
};

static NET: Net = Net::new(17);

/// The keys as ntp.keys(5) writes them (rntpd, NTPsec, ntpdig): 1 MD5 (ASCII), 2 SHA1 (hex),
/// 3 AES-128-CMAC (hex); key 4 is each side's own secret (see [`CLIENT_KEY4`]).
const SHARED: &str = "1 MD5 rntpdInteropMd5\n\
                      2 SHA1 6b1a0c3f9e2d4b5a69788796a5b4c3d2e1f00112\n\
                      3 AES128CMAC 00112233445566778899aabbccddeeff\n";
/// The same keys in chrony's syntax.
const SHARED_CHRONY: &str = "1 MD5 ASCII:rntpdInteropMd5\n\
                             2 SHA1 HEX:6B1A0C3F9E2D4B5A69788796A5B4C3D2E1F00112\n\
                             3 AES128 HEX:00112233445566778899AABBCCDDEEFF\n";
/// Key 4 of the clients; the servers' key 4 has another secret.
const CLIENT_KEY4: &str = "4 MD5 clientSideSecret\n";
const SERVER_KEY4: &str = "4 MD5 serverSideSecret\n";
/// A key only the clients have.
const CLIENT_KEY5: &str = "5 SHA1 0123456789abcdef0123456789abcdef01234567\n";

/// Writes a key file (mode 0600, so rntpd does not warn) and returns its path.
fn key_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).expect("write key file");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// `rntpctl status --json`'s `auth` object.
fn auth(rntpd: &Rntpd) -> Value {
    rntpd.status_json()["auth"].clone()
}

/// The count of `reason` in a `[[name, count], ...]` list.
fn count(list: &Value, reason: &str) -> u64 {
    list.as_array()
        .into_iter()
        .flatten()
        .find(|p| p[0] == reason)
        .and_then(|p| p[1].as_u64())
        .unwrap_or(0)
}

#[test]
fn rntpd_client_uses_chronyd_and_ntpsec_servers_with_each_key_type() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let server_keys = key_file(dir.path(), "server.keys", &format!("{SHARED}{SERVER_KEY4}"));
    let chrony_keys = key_file(
        dir.path(),
        "chrony.keys",
        &format!("{SHARED_CHRONY}4 MD5 ASCII:serverSideSecret\n"),
    );
    let client_keys = key_file(dir.path(), "client.keys", &format!("{SHARED}{CLIENT_KEY4}"));

    let chrony = ChronyServer::start_with(
        &dir,
        net.addr(1),
        12317,
        Shift::None,
        &format!("keyfile {}\n", chrony_keys.display()),
    );
    let ntpsec = NtpsecServer::start_with(
        &dir,
        net.addr(2),
        &format!("keys {}\ntrustedkey 1 2 3 4\n", server_keys.display()),
    );
    // An rntpd server with the server-side key 4: it answers a bad MAC with a crypto-NAK.
    let rntpd_server_addr = net.sock(3, 12317);
    assert_udp_free(rntpd_server_addr);
    let rntpd_server = Rntpd::start(
        &dir,
        &format!(
            "interface listen {} port 12317\nrestrict default\ntos orphan 3\nkeys {}\n\
             trustedkey 1 2 3 4\n",
            net.addr(3),
            server_keys.display()
        ),
    );
    chrony.wait_ready();
    ntpsec.wait_ready();

    // One rntpd per key (a source is its address and port: one key per server per daemon).
    let clients: Vec<(u32, Rntpd)> = (1..=4)
        .map(|key| {
            let config = format!(
                "keys {}\ntrustedkey 1 2 3 4\n\
                 server {} port 12317 key {key} iburst minpoll -2 maxpoll -2\n\
                 server {} key {key} iburst minpoll -2 maxpoll -2\n\
                 server {} port 12317 key {key} iburst minpoll -2 maxpoll -2\n",
                client_keys.display(),
                net.addr(1),
                net.addr(2),
                net.addr(3),
            );
            (key, Rntpd::start(&dir, &config))
        })
        .collect();

    for (key, client) in &clients[..3] {
        // Every server answers with the key: eight good samples each.
        client.wait_for_peers(Duration::from_secs(20), |peers| {
            if peers.len() != 3 {
                return Err(format!("{} rows", peers.len()));
            }
            for p in peers {
                if p["reach"].as_u64() != Some(0xFF) {
                    return Err(format!("key {key}: {} reach {}", p["address"], p["reach"]));
                }
            }
            Ok(())
        });
        let status = client.status_json();
        let failures = status["auth"]["client_failures"].as_array().map_or(0, Vec::len);
        assert_eq!(failures, 0, "key {key}: {}", status["auth"]);
    }

    // Key 4: chronyd and NTPsec stay silent, rntpd answers a crypto-NAK; nothing is used.
    let (_, wrong) = &clients[3];
    let peers = wrong.wait_for_peers(Duration::from_secs(10), |_| {
        let a = auth(wrong);
        count(&a["client_failures"], "auth_crypto_nak") >= 4
    });
    assert!(peers.iter().all(|p| p["reach"] == 0), "{peers:?}");
    assert_eq!(wrong.status_json()["counters"]["accepted"], 0);
    // ... and each server counted the bad MAC.
    let a = auth(&rntpd_server);
    assert!(count(&a["server_failures"], "auth_bad_mac") >= 4, "{a}");
    assert!(a["server_authenticated"].as_u64().unwrap_or(0) >= 24, "{a}");
    let stats = chrony.chronyc(&["serverstats"]).unwrap_or_else(|e| panic!("{e}"));
    let field = |name: &str| -> u64 {
        stats
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(':').next()?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no `{name}` in:\n{stats}"))
    };
    let (received, authenticated) =
        (field("NTP packets received"), field("Authenticated NTP packets"));
    assert!(authenticated >= 24, "chronyd authenticated {authenticated}:\n{stats}");
    assert!(received >= authenticated + 4, "chronyd's unauthenticated requests:\n{stats}");
    let out = run(std::process::Command::new("/opt/ntpsec/usr/bin/ntpq").args([
        "-c",
        "authinfo",
        &net.addr(2).to_string(),
    ]));
    let info = String::from_utf8_lossy(&out.stdout);
    let failures: u64 = info
        .lines()
        .find(|l| l.starts_with("digest failures:"))
        .and_then(|l| l.split_whitespace().nth(2)?.parse().ok())
        .unwrap_or_else(|| panic!("ntpq -c authinfo:\n{info}"));
    assert!(failures >= 4, "NTPsec's digest failures:\n{info}");
    drop(clients);
    drop((chrony, ntpsec, rntpd_server));
}

#[test]
fn chronyd_and_ntpdig_clients_get_authenticated_time_from_rntpd() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let server_keys = key_file(dir.path(), "server.keys", &format!("{SHARED}{SERVER_KEY4}"));
    let client_keys =
        key_file(dir.path(), "client.keys", &format!("{SHARED}{CLIENT_KEY4}{CLIENT_KEY5}"));
    let chrony_keys = key_file(
        dir.path(),
        "chrony.keys",
        &format!("{SHARED_CHRONY}4 MD5 ASCII:clientSideSecret\n5 SHA1 HEX:0123456789ABCDEF0123456789ABCDEF01234567\n"),
    );
    // Port 123: ntpdig cannot use another.
    let addr = net.sock(1, 123);
    assert_udp_free(addr);
    let rntpd = Rntpd::start(
        &dir,
        &format!(
            "interface listen {} port 123\nrestrict default\ntos orphan 3\nkeys {}\n\
             trustedkey 1 2 3 4\n",
            addr.ip(),
            server_keys.display()
        ),
    );
    if let Err(e) = ntp::wait_synced(addr, 3, Duration::from_secs(10)) {
        panic!("{e}\n{}", rntpd.logs());
    }

    for key in 1..=3 {
        let offset = chronyd_query_keyed(addr, key, &chrony_keys)
            .unwrap_or_else(|e| panic!("chronyd key {key}: {e}\n{}", rntpd.logs()));
        assert!(offset.abs() < 0.01, "chronyd key {key}: offset {offset}");
        let out = ntpdig(addr, key, &client_keys);
        assert!(
            out.status.success() && out.stdout.contains("s3 no-leap"),
            "ntpdig key {key}: {out}"
        );
    }
    let a = auth(&rntpd);
    assert!(a["server_authenticated"].as_u64().unwrap_or(0) >= 6, "{a}");

    // Key 4 (the secrets differ) and key 5 (unknown to rntpd): no time, counted by reason.
    for key in [4, 5] {
        assert!(chronyd_query_keyed(addr, key, &chrony_keys).is_err(), "chronyd key {key}");
        let out = ntpdig(addr, key, &client_keys);
        // (NTPsec 1.2.2's ntpdig dies on the crypto-NAK: "'bytes' object has no attribute
        // 'trusted'"; it prints no time either way.)
        assert!(
            !out.status.success() && !out.stdout.contains("no-leap"),
            "ntpdig key {key}: {out}"
        );
    }
    let a = auth(&rntpd);
    assert!(count(&a["server_failures"], "auth_bad_mac") >= 2, "{a}");
    assert!(count(&a["server_failures"], "auth_unknown_key") >= 2, "{a}");
    let server = &rntpd.status_json()["server"];
    assert!(server["crypto_naks"].as_u64().unwrap_or(0) >= 4, "{server}");
}

/// `chronyd -Q` with `key N` from chrony's key file: the offset, or why not.
fn chronyd_query_keyed(server: std::net::SocketAddr, key: u32, keys: &Path) -> Result<f64, String> {
    let directive =
        format!("server {} port {} iburst maxsamples 2 key {key}", server.ip(), server.port());
    let keyfile = format!("keyfile {}", keys.display());
    let out = run(nocap("/usr/sbin/chronyd").args(["-Q", "-t", "3", &directive, &keyfile]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("chronyd -Q failed: {stderr}"));
    }
    stderr
        .lines()
        .find_map(|l| {
            l.split_once("System clock wrong by ")?.1.split_whitespace().next()?.parse().ok()
        })
        .ok_or_else(|| format!("no offset in: {stderr}"))
}

/// What `ntpdig -k KEYS -a KEY -t 1 ADDR` did.
struct Ran {
    status: std::process::ExitStatus,
    stdout: String,
    stderr: String,
}

impl std::fmt::Display for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\nstdout: {}\nstderr: {}", self.status, self.stdout, self.stderr)
    }
}

fn ntpdig(addr: std::net::SocketAddr, key: u32, keys: &Path) -> Ran {
    let out = run(nocap("/usr/bin/ntpdig").args([
        "-k",
        &keys.display().to_string(),
        "-a",
        &key.to_string(),
        "-t",
        "1",
        &addr.ip().to_string(),
    ]));
    Ran {
        status: out.status,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A reload (`rntpctl reload`, as SIGHUP) reads the key file again: a changed secret is used
/// at once (the server then answers crypto-NAKs, counted), a broken key file is refused and
/// the running keys stay, and the old secret back makes the server usable again.
#[test]
fn a_reload_swaps_the_keys_and_a_broken_key_file_changes_nothing() {
    let dir = TestDir::new();
    let net = NET.allocate();
    let server_keys = key_file(dir.path(), "server.keys", SHARED);
    let client_keys = key_file(dir.path(), "client.keys", SHARED);
    let addr = net.sock(1, 12317);
    assert_udp_free(addr);
    let _server = Rntpd::start(
        &dir,
        &format!(
            "interface listen {} port 12317\nrestrict default\ntos orphan 3\nkeys {}\ntrustedkey 3\n",
            addr.ip(),
            server_keys.display()
        ),
    );
    let client = Rntpd::start(
        &dir,
        &format!(
            "keys {}\ntrustedkey 3\nserver {} port 12317 key 3 iburst minpoll -2 maxpoll -2\n",
            client_keys.display(),
            addr.ip()
        ),
    );
    let accepted = |c: &Rntpd| c.status_json()["counters"]["accepted"].as_u64().unwrap_or(0);
    let naks = |c: &Rntpd| count(&auth(c)["client_failures"], "auth_crypto_nak");
    support::wait_until("keyed samples", Duration::from_secs(10), || {
        (accepted(&client) >= 2).then_some(()).ok_or_else(|| "not yet".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", client.logs()));

    // Another secret for key 3: the reload applies it, the server now NAKs every request.
    let other = "3 AES128CMAC ffeeddccbbaa99887766554433221100\n";
    fs::write(&client_keys, other).expect("rewrite keys");
    let reloaded = client.ctl_ok(&["reload"]);
    assert!(reloaded.contains("keys"), "{reloaded}");
    let before = naks(&client);
    support::wait_until("crypto-NAKs after the reload", Duration::from_secs(10), || {
        (naks(&client) >= before + 2).then_some(()).ok_or_else(|| "not yet".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", client.logs()));

    // A broken key file: the reload is refused, the running keys stay.
    fs::write(&client_keys, "3 AES128CMAC 0011\n").expect("break keys");
    let out = client.ctl(&["reload"]);
    assert!(!out.status.success(), "a broken key file must not reload");
    assert_eq!(auth(&client)["keys"], 1);

    // The shared secret back: samples again.
    fs::write(&client_keys, SHARED).expect("restore keys");
    client.ctl_ok(&["reload"]);
    let now = accepted(&client);
    support::wait_until("keyed samples again", Duration::from_secs(10), || {
        (accepted(&client) >= now + 2).then_some(()).ok_or_else(|| "not yet".to_string())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", client.logs()));
}
