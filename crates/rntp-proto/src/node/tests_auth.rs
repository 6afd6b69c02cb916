//! Issue 15 in the node: keyed sources (client), authenticated replies (server, through the
//! real responder as the "other side"), `:config` over mode 6, and manycast in both roles. The
//! node is driven by hand in virtual time; every packet is built by the code that ships.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use super::*;
use crate::assoc::AssocConfig;
use crate::auth::{Digest, Key, KeyId, KeyStore};
use crate::mode6::{ControlHeader, ControlPacket, ControlRepr, ErrorCode, Opcode};
use crate::rng::SplitMix64;
use crate::server::{RateLimit, ReplyKind, RestrictFlags, RestrictRule, ServerConfig};
use crate::source::{SourceSpec, DEFAULT_MANYCAST_TTL, MANYCAST_ORPHAN_WAIT_SECS};
use crate::time::PollInterval;
use crate::wire::{Mode, NtpHeader};

const SECRET: &[u8] = b"rntpd-test-secret";
const OTHER: &[u8] = b"another-secret!!";

fn at(secs: f64) -> Instant {
    Instant::from_nanos(1).add_secs_f64(secs)
}

fn wall(secs: f64) -> NtpTimestamp {
    NtpTimestamp::from_bits(0xE9A1_B2C3_0000_0000).add_duration(NtpDuration::from_secs_f64(secs))
}

fn key(id: u32, digest: Digest, secret: &[u8]) -> Key {
    let secret = if digest == Digest::Aes128Cmac { &secret[..16] } else { secret };
    Key::new(KeyId(id), digest, secret).expect("valid key")
}

fn store(keys: &[Key]) -> KeyStore {
    let mut s: KeyStore = keys.iter().cloned().collect();
    s.trust_all();
    s
}

fn store1(k: &Key) -> KeyStore {
    store(std::slice::from_ref(k))
}

fn v4(d: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(192, 0, 2, d))
}

fn spec(kind: SourceKind, target: IpAddr, key: Option<u32>) -> SourceSpec {
    SourceSpec {
        kind,
        target: Target::Addr(target),
        port: 123,
        assoc: AssocConfig {
            minpoll: PollInterval::from_log2(0),
            maxpoll: PollInterval::from_log2(2),
            ..AssocConfig::default()
        },
        family: AddrFamily::Any,
        prefer: false,
        noselect: false,
        key: key.map(KeyId),
    }
}

fn node_with(sources: Vec<SourceSpec>, auth: AuthConfig, server: ServerConfig) -> Node {
    let sources = sources
        .into_iter()
        .enumerate()
        .map(|(i, spec)| ConfiguredSource { spec, origin: format!("test:{i}") })
        .collect();
    let config = NodeConfig {
        sources,
        auth,
        server,
        orphan: Some(3),
        listen: vec![SocketAddr::new(v4(200), 123)],
        ..NodeConfig::default()
    };
    Node::new(at(0.0), config, Box::new(SplitMix64::new(11)))
}

fn open_server() -> ServerConfig {
    ServerConfig { default_flags: RestrictFlags::NONE, ..ServerConfig::default() }
}

/// A synchronized stratum-2 server.
fn synced() -> SystemState {
    SystemState {
        leap: crate::wire::LeapIndicator::NoWarning,
        stratum: 2,
        precision: -20,
        root_delay: 0.001,
        root_dispersion: 0.001,
        reference_id: crate::wire::ReferenceId::from_bytes([10, 0, 0, 1]),
        reference_time: wall(-10.0),
    }
}

/// The other side: a responder with `keys`.
fn far_server(keys: KeyStore) -> Responder {
    let mut r = Responder::new(open_server(), 5);
    r.set_keys(keys);
    r
}

/// Runs the node to `t`, answering every request it sends with `answer`.
fn run(
    n: &mut Node,
    from: f64,
    to: f64,
    answer: &mut dyn FnMut(f64, &Transmit) -> Option<Vec<u8>>,
) -> Vec<Transmit> {
    let mut sent = Vec::new();
    let mut t = from;
    while t <= to {
        n.handle_timeout(at(t));
        while let Some(tx) = n.poll_transmit(at(t), wall(t)) {
            if let Some(reply) = answer(t, &tx) {
                n.handle_packet(at(t + 0.001), tx.local, tx.remote, wall(t + 0.001), &reply);
            }
            sent.push(tx);
        }
        t += 0.25;
    }
    sent
}

/// The far server's answer to a client request.
fn answer_with(server: &mut Responder, t: f64, tx: &Transmit) -> Option<Vec<u8>> {
    let mut out = [0u8; 128];
    match server.respond(at(t), wall(t), v4(100), &tx.payload, &synced(), &mut out) {
        ServerAction::Reply { len, .. } => {
            server.finish_reply(&mut out[..len], wall(t + 0.0005));
            Some(out[..len].to_vec())
        }
        ServerAction::Ignore(_) => None,
    }
}

#[test]
fn keyed_source_signs_requests_and_uses_only_replies_with_its_key() {
    for digest in Digest::ALL {
        let k = key(7, digest, SECRET);
        let auth = AuthConfig { keys: store1(&k), control_key: None };
        let mut n = node_with(vec![spec(SourceKind::Server, v4(1), Some(7))], auth, open_server());
        let mut server = far_server(store1(&k));
        let sent = run(&mut n, 0.0, 3.0, &mut |t, tx| answer_with(&mut server, t, tx));
        assert!(!sent.is_empty());
        for tx in &sent {
            assert_eq!(tx.payload.len(), 48 + k.mac_wire_len(), "{digest}: signed request");
            assert_eq!(n.keys().check_reply(KeyId(7), &tx.payload), Ok(()));
        }
        let c = n.status(at(3.0)).counters;
        assert_eq!(c.accepted, sent.len() as u64, "{digest}: every signed reply used: {c:?}");
        assert_eq!(server.counters().authenticated, sent.len() as u64);
    }
}

#[test]
fn wrong_keys_are_dropped_and_counted_on_both_sides() {
    let ours = key(7, Digest::Sha1, SECRET);
    let auth = AuthConfig { keys: store1(&ours), control_key: None };
    let mut n = node_with(vec![spec(SourceKind::Server, v4(1), Some(7))], auth, open_server());

    // The server's key 7 has another secret: it answers with a crypto-NAK.
    let mut server = far_server(store(&[key(7, Digest::Sha1, OTHER)]));
    let sent = run(&mut n, 0.0, 2.0, &mut |t, tx| answer_with(&mut server, t, tx));
    let dropped = n.status(at(2.0)).counters.dropped;
    assert_eq!(dropped.get("auth_crypto_nak"), Some(&(sent.len() as u64)), "{dropped:?}");
    assert_eq!(n.status(at(2.0)).counters.accepted, 0);
    let failures: Vec<_> = server.counters().auth_failures().filter(|(_, c)| *c > 0).collect();
    assert_eq!(failures, vec![("auth_bad_mac", sent.len() as u64)]);
    assert_eq!(server.counters().crypto_naks, sent.len() as u64);

    // A server without the key: unknown key, counted as such, also a crypto-NAK.
    let mut keyless = far_server(KeyStore::new());
    run(&mut n, 2.25, 3.0, &mut |t, tx| answer_with(&mut keyless, t, tx));
    assert!(keyless.counters().auth_failures().any(|(r, c)| r == "auth_unknown_key" && c > 0));
}

#[test]
fn forged_replies_never_consume_the_nonce() {
    let ours = key(7, Digest::Md5, SECRET);
    let auth = AuthConfig { keys: store1(&ours), control_key: None };
    let mut n = node_with(vec![spec(SourceKind::Server, v4(1), Some(7))], auth, open_server());
    let mut server = far_server(store1(&ours));
    let other = key(8, Digest::Md5, SECRET);
    n.handle_timeout(at(1.0));
    let tx = n.poll_transmit(at(1.0), wall(1.0)).expect("a request");
    let real = answer_with(&mut server, 1.0, &tx).expect("answered");
    let bare = real[..48].to_vec();
    let mut resigned = bare.clone();
    other.append_mac(&mut resigned);
    let mut corrupted = real.clone();
    *corrupted.last_mut().unwrap() ^= 1;
    for bad in [&bare, &resigned, &corrupted] {
        n.handle_packet(at(1.001), tx.local, tx.remote, wall(1.001), bad);
    }
    n.handle_packet(at(1.002), tx.local, tx.remote, wall(1.002), &real);
    let c = n.status(at(1.1)).counters;
    assert_eq!(c.accepted, 1, "the real reply still counts: {c:?}");
    for reason in ["auth_missing", "auth_wrong_key", "auth_bad_mac"] {
        assert_eq!(c.dropped.get(reason), Some(&1), "{reason}: {c:?}");
    }
    let peer = &n.peers(at(1.1))[0];
    assert_eq!(peer.drops.get("auth_bad_mac"), Some(&1));
    let events: Vec<NodeEvent> = std::iter::from_fn(|| n.poll_event()).collect();
    let auth_events = events
        .iter()
        .filter(|e| matches!(e, NodeEvent::AuthFailed { outgoing: false, .. }))
        .count();
    assert_eq!(auth_events, 3);
}

#[test]
fn an_untrusted_key_is_refused_and_a_removed_key_stops_the_polls() {
    let k = key(7, Digest::Md5, SECRET);
    let mut untrusted: KeyStore = [k.clone()].into_iter().collect();
    untrusted.trust(KeyId(9));
    let auth = AuthConfig { keys: untrusted, control_key: None };
    let mut n = node_with(vec![spec(SourceKind::Server, v4(1), Some(7))], auth, open_server());
    assert!(n.associations(at(0.0)).is_empty(), "a source with an untrusted key is refused");
    let rejected = std::iter::from_fn(|| n.poll_event())
        .any(|e| matches!(e, NodeEvent::SourceRejected { error: AddError::UntrustedKey(7), .. }));
    assert!(rejected);

    // Trusted at start, then a reload drops the key: nothing is sent unsigned.
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let mut n = node_with(vec![spec(SourceKind::Server, v4(1), Some(7))], auth, open_server());
    n.set_keys(AuthConfig::default());
    let sent = run(&mut n, 0.0, 3.0, &mut |_, _| None);
    assert!(sent.is_empty(), "never polled without its key: {sent:?}");
    let c = n.status(at(3.0)).counters;
    assert!(c.dropped.get("auth_key_unusable").is_some_and(|n| *n > 0), "{c:?}");
}

#[test]
fn server_signs_authenticated_replies_with_the_request_key_over_the_transmit_time() {
    for digest in Digest::ALL {
        let k = key(3, digest, SECRET);
        let auth = AuthConfig { keys: store1(&k), control_key: None };
        let mut n = node_with(Vec::new(), auth, open_server());
        let mut request = NtpHeader {
            mode: Mode::Client,
            transmit_ts: NtpTimestamp::from_bits(0x1234_5678_9ABC_DEF0),
            ..NtpHeader::parse(&[0x23; 48]).expect("header")
        }
        .to_bytes()
        .to_vec();
        request[0] = 0x23;
        k.append_mac(&mut request);
        let mut out = [0u8; 128];
        let ServerAction::Reply { len, kind } =
            n.respond(at(1.0), wall(1.0), v4(50), &request, &mut out)
        else {
            panic!("{digest}: no reply");
        };
        assert_eq!((len, kind), (request.len(), ReplyKind::Authenticated), "{digest}");
        n.finish_reply(at(1.0), &mut out[..len], wall(1.0001));
        let reply = &out[..len];
        assert_ne!(&reply[40..48], &[0; 8], "transmit time written");
        assert_eq!(n.keys().check_reply(KeyId(3), reply), Ok(()), "{digest}: MAC covers it");
        assert_eq!(n.server_counters().authenticated, 1);
    }
}

#[test]
fn notrust_serves_only_authenticated_clients() {
    let k = key(3, Digest::Aes128Cmac, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let server = ServerConfig {
        default_flags: RestrictFlags::NOTRUST,
        restrict: vec![RestrictRule::prefix(v4(9), 32, RestrictFlags::NONE)],
        rate: RateLimit::default(),
    };
    let mut n = node_with(Vec::new(), auth, server);
    let mut plain = [0u8; 48];
    plain[0] = 0x23;
    plain[40] = 1;
    let mut signed = plain.to_vec();
    k.append_mac(&mut signed);
    let mut bad = signed.clone();
    *bad.last_mut().unwrap() ^= 1;
    let mut out = [0u8; 128];
    let mut ask =
        |n: &mut Node, src: IpAddr, req: &[u8]| n.respond(at(1.0), wall(1.0), src, req, &mut out);
    assert_eq!(
        ask(&mut n, v4(50), &plain),
        ServerAction::Ignore(crate::server::IgnoreReason::NotTrusted)
    );
    assert!(matches!(
        ask(&mut n, v4(50), &signed),
        ServerAction::Reply { kind: ReplyKind::Authenticated, .. }
    ));
    // A MAC that fails still gets its crypto-NAK (ntpd's AUTH_ERROR).
    assert!(matches!(
        ask(&mut n, v4(50), &bad),
        ServerAction::Reply { len: 52, kind: ReplyKind::CryptoNak }
    ));
    // A client with a rule of its own without notrust is served unauthenticated.
    assert!(matches!(
        ask(&mut n, v4(9), &plain),
        ServerAction::Reply { kind: ReplyKind::Normal, .. }
    ));
    assert_eq!(n.server_counters().dropped_for(crate::server::IgnoreReason::NotTrusted), 1);
}

#[test]
fn a_kiss_to_an_authenticated_client_is_signed() {
    let k = key(3, Digest::Md5, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let server = ServerConfig {
        default_flags: RestrictFlags::NOSERVE | RestrictFlags::KOD,
        ..ServerConfig::default()
    };
    let mut n = node_with(Vec::new(), auth, server);
    let mut req = vec![0u8; 48];
    req[0] = 0x23;
    req[40] = 9;
    k.append_mac(&mut req);
    let mut out = [0u8; 128];
    let ServerAction::Reply { len, kind: ReplyKind::Kod(_) } =
        n.respond(at(1.0), wall(1.0), v4(50), &req, &mut out)
    else {
        panic!("a DENY kiss");
    };
    assert_eq!(n.keys().check_reply(KeyId(3), &out[..len]), Ok(()));
}

// ----- :config ----------------------------------------------------------------------------

/// Parses `server ADDR` and `unpeer X`: enough to drive the node's side.
struct TestParser;

impl ConfigParser for TestParser {
    fn parse_line(&self, line: &str, origin: &str) -> Result<RemoteCommand, RemoteConfigError> {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["server", addr] => match addr.parse::<IpAddr>() {
                Ok(ip) => Ok(RemoteCommand::Add(ConfiguredSource {
                    spec: spec(SourceKind::Server, ip, None),
                    origin: origin.into(),
                })),
                Err(_) => Err(RemoteConfigError { column: Some(8), message: "bad address".into() }),
            },
            ["unpeer", name] => Ok(RemoteCommand::Remove((*name).into())),
            _ => Err(RemoteConfigError { column: Some(1), message: "unknown".into() }),
        }
    }
}

/// An ntpq CONFIGURE request, padded to 8 and signed with `key` as ntpq does.
fn configure(text: &str, key: Option<&Key>) -> Vec<u8> {
    let repr = ControlRepr {
        header: ControlHeader {
            leap: crate::wire::LeapIndicator::NoWarning,
            version: 2,
            response: false,
            error: false,
            more: false,
            opcode: Opcode::Configure,
            sequence: 7,
            status: 0,
            association_id: 0,
            offset: 0,
        },
        data: text.as_bytes(),
        trailer: &[],
    };
    let mut buf = vec![0u8; 600];
    let len = repr.emit(&mut buf).expect("emit");
    buf.truncate(len);
    if let Some(k) = key {
        while !buf.len().is_multiple_of(8) {
            buf.push(0);
        }
        k.append_mac(&mut buf);
    }
    buf
}

/// The answer's data, whether it is an error, and whether it verified with `key`.
fn config_answer(
    n: &mut Node,
    client: IpAddr,
    req: &[u8],
    key: &Key,
) -> (String, Option<ErrorCode>, bool) {
    let mut out = [0u8; 1024];
    let ServerAction::Reply { len, kind: ReplyKind::Control } =
        n.respond(at(2.0), wall(2.0), client, req, &mut out)
    else {
        panic!("no answer");
    };
    let reply = &out[..len];
    let p = ControlPacket::new_checked(reply).expect("parses");
    let error = p.is_error().then(|| ErrorCode::from_status_word(p.status()));
    let text = String::from_utf8_lossy(p.data()).into_owned();
    // ntpq's check: the MAC starts after the data padded to 8.
    let end = (12 + usize::from(p.count())).next_multiple_of(8);
    let signed =
        reply.len() == end + key.mac_wire_len() && key.verify(&reply[..end], &reply[end + 4..]);
    (text, error, signed)
}

#[test]
fn config_needs_the_control_key_and_maps_onto_add_and_remove() {
    let control = key(5, Digest::Md5, SECRET);
    let other = key(6, Digest::Md5, SECRET);
    let auth =
        AuthConfig { keys: store(&[control.clone(), other.clone()]), control_key: Some(KeyId(5)) };
    let mut n = node_with(Vec::new(), auth, ServerConfig::default());
    n.set_config_parser(Box::new(TestParser));
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);

    // Refused: unsigned, another trusted key, a bad MAC, a key nobody has.
    let wrong_secret = key(5, Digest::Md5, OTHER);
    let unknown = key(9, Digest::Md5, SECRET);
    let cases: [(Option<&Key>, &str); 4] = [
        (None, "unauthenticated"),
        (Some(&other), "wrong_key"),
        (Some(&wrong_secret), "auth_bad_mac"),
        (Some(&unknown), "auth_unknown_key"),
    ];
    for (k, reason) in cases {
        let (_, error, _) =
            config_answer(&mut n, local, &configure("server 192.0.2.1", k), &control);
        assert_eq!(error, Some(ErrorCode::Permission), "{reason}");
        assert_eq!(n.control_counters().config_refused.get(reason), Some(&1), "{reason}");
    }
    assert!(n.sources().is_empty(), "nothing was added");

    // Accepted: the source is added, the answer says so and is signed with the control key.
    let (text, error, signed) =
        config_answer(&mut n, local, &configure("server 192.0.2.1", Some(&control)), &control);
    assert_eq!((text.as_str(), error, signed), (CONFIG_SUCCEEDED, None, true));
    assert_eq!(n.sources().len(), 1);
    assert_eq!(n.sources()[0].origin, "ntpq :config from 127.0.0.1");
    let events: Vec<_> = std::iter::from_fn(|| n.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(e, NodeEvent::RemoteConfig { outcome: Ok(_), .. })));

    // A parse error names its column (ntpq underlines it) and changes nothing.
    let (text, error, _) = config_answer(
        &mut n,
        local,
        &configure("server 192.0.2.2\nserver x", Some(&control)),
        &control,
    );
    assert_eq!((text.as_str(), error), ("column 8 syntax error: bad address", None));
    assert_eq!(n.sources().len(), 1);

    // unpeer removes the source and its association; an unknown name is reported.
    let (text, _, _) =
        config_answer(&mut n, local, &configure("unpeer 192.0.2.1", Some(&control)), &control);
    assert_eq!(text, CONFIG_SUCCEEDED);
    assert!(n.sources().is_empty() && n.associations(at(2.0)).is_empty());
    let (text, _, _) =
        config_answer(&mut n, local, &configure("unpeer nowhere.test", Some(&control)), &control);
    assert!(text.starts_with("`unpeer nowhere.test`: no source named"), "{text}");
    assert_eq!(n.control_counters().config_accepted, 2);
}

#[test]
fn config_is_refused_without_a_control_key_and_under_nomodify() {
    let control = key(5, Digest::Md5, SECRET);
    let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let req = configure("server 192.0.2.1", Some(&control));
    let auth = AuthConfig { keys: store1(&control), control_key: None };
    let mut n = node_with(Vec::new(), auth, ServerConfig::default());
    n.set_config_parser(Box::new(TestParser));
    assert_eq!(config_answer(&mut n, local, &req, &control).1, Some(ErrorCode::Permission));
    assert_eq!(n.control_counters().config_refused.get("no_controlkey"), Some(&1));

    let server = ServerConfig { default_flags: RestrictFlags::NOMODIFY, ..ServerConfig::default() };
    let auth = AuthConfig { keys: store1(&control), control_key: Some(KeyId(5)) };
    let mut n = node_with(Vec::new(), auth, server);
    n.set_config_parser(Box::new(TestParser));
    assert_eq!(config_answer(&mut n, local, &req, &control).1, Some(ErrorCode::Permission));
    assert_eq!(n.control_counters().config_refused.get("nomodify"), Some(&1));
}

// ----- manycast -----------------------------------------------------------------------------

const GROUP: IpAddr = IpAddr::V4(Ipv4Addr::new(239, 1, 2, 3));

fn manycast(maxsources: u8, key: u32) -> SourceSpec {
    spec(SourceKind::Manycast { maxsources, ttl: DEFAULT_MANYCAST_TTL }, GROUP, Some(key))
}

/// A manycast server's answer (None: silent).
fn mc_answer(server: &mut Responder, sys: &SystemState, t: f64, tx: &Transmit) -> Option<Vec<u8>> {
    let mut out = [0u8; 128];
    let len = server.respond_manycast(at(t), wall(t), v4(99), &tx.payload, sys, &mut out)?;
    server.finish_reply(&mut out[..len], wall(t));
    Some(out[..len].to_vec())
}

fn members(n: &Node) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = n.associations(at(0.0)).iter().map(|(_, a)| a.remote.ip()).collect();
    v.sort();
    v
}

#[test]
fn manycast_client_solicits_with_its_key_and_an_expanding_ttl() {
    let k = key(4, Digest::Aes128Cmac, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let mut n = node_with(vec![manycast(3, 4)], auth, open_server());
    let sent = run(&mut n, 0.0, 10.0, &mut |_, _| None);
    let solicitations: Vec<&Transmit> =
        sent.iter().filter(|t| matches!(t.local, Local::Manycast(_))).collect();
    assert!(solicitations.len() >= 4, "{solicitations:?}");
    for s in &solicitations {
        assert_eq!(s.remote, SocketAddr::new(GROUP, 123));
        assert_eq!(n.keys().check_reply(KeyId(4), &s.payload), Ok(()), "signed with key 4");
        assert_eq!(s.payload[0] & 7, 3, "mode 3");
    }
    let ttls: Vec<u8> = solicitations.iter().filter_map(|s| s.ttl).collect();
    // ntpd's ring up to the default cap of 127, then the largest, ever less often.
    assert_eq!(&ttls[..4], &[31, 63, 95, 127]);
    assert!(ttls[4..].iter().all(|t| *t == 127));
    assert!(n.associations(at(10.0)).is_empty());
}

#[test]
fn manycast_mobilizes_only_keyed_synchronized_answers_up_to_its_limit() {
    let k = key(4, Digest::Sha1, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let mut n = node_with(vec![manycast(2, 4)], auth, open_server());
    let mut good = far_server(store1(&k));
    let mut wrong = far_server(store(&[key(4, Digest::Sha1, OTHER)]));
    let unsync = SystemState::unsynchronized(-20);
    n.handle_timeout(at(0.0));
    let tx = n.poll_transmit(at(0.0), wall(0.0)).expect("solicitation");
    let Local::Manycast(_) = tx.local else { panic!("{tx:?}") };
    // The wrong-key server and an unsynchronized one stay silent (counted there).
    assert!(mc_answer(&mut wrong, &synced(), 0.0, &tx).is_none());
    assert!(mc_answer(&mut good, &unsync, 0.0, &tx).is_none());
    assert_eq!(wrong.manycast_counters().dropped.get("auth_bad_mac"), Some(&1));
    assert_eq!(good.manycast_counters().dropped.get("unsynchronized"), Some(&1));
    // Three keyed servers answer; a forged answer signed with another secret arrives too.
    let reply = mc_answer(&mut good, &synced(), 0.0, &tx).expect("answered");
    let mut forged = reply[..48].to_vec();
    key(4, Digest::Sha1, OTHER).append_mac(&mut forged);
    n.handle_packet(at(0.01), tx.local, SocketAddr::new(v4(66), 123), wall(0.01), &forged);
    for d in [10, 11, 12] {
        n.handle_packet(at(0.01), tx.local, SocketAddr::new(v4(d), 123), wall(0.01), &reply);
    }
    // A repeat of the same answer and one to no solicitation of ours are dropped.
    n.handle_packet(at(0.02), tx.local, SocketAddr::new(v4(10), 123), wall(0.02), &reply);
    let c = n.manycast_counters().clone();
    assert_eq!(c.offers, 3, "{c:?}");
    assert_eq!(c.dropped.get("auth_bad_mac"), Some(&1));
    assert_eq!(c.dropped.get("duplicate"), Some(&1));
    let m = members(&n);
    assert_eq!(m.len(), 2, "up to maxsources: {m:?}");
    assert!(m.iter().all(|ip| [v4(10), v4(11), v4(12)].contains(ip)), "{m:?}");
    // The members poll by unicast with the same key.
    let sent = run(&mut n, 0.25, 2.0, &mut |_, _| None);
    let unicast: Vec<_> = sent.iter().filter(|t| matches!(t.local, Local::Client(_))).collect();
    assert!(!unicast.is_empty());
    assert!(unicast.iter().all(|t| n.keys().check_reply(KeyId(4), &t.payload).is_ok()));
    // At its target the client stops soliciting.
    assert!(sent.iter().all(|t| !matches!(t.local, Local::Manycast(_))), "{sent:?}");
}

#[test]
fn orphan_answers_are_used_after_synchronized_ones() {
    let k = key(4, Digest::Md5, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let mut n = node_with(vec![manycast(1, 4)], auth, open_server());
    let mut server = far_server(store1(&k));
    let orphan_state = initial_system_state(-20, Some(5));
    n.handle_timeout(at(0.0));
    let tx = n.poll_transmit(at(0.0), wall(0.0)).expect("solicitation");
    let orphan = mc_answer(&mut server, &orphan_state, 0.0, &tx).expect("an orphan answers");
    assert_eq!(&orphan[16..24], &[0; 8], "an orphan's reference time is zero");
    let real = mc_answer(&mut server, &synced(), 0.0, &tx).expect("answered");
    // The orphan answers first, the synchronized server a little later: the latter wins.
    n.handle_packet(at(0.01), tx.local, SocketAddr::new(v4(20), 123), wall(0.01), &orphan);
    assert!(members(&n).is_empty(), "an orphan waits");
    n.handle_packet(at(0.05), tx.local, SocketAddr::new(v4(21), 123), wall(0.05), &real);
    assert_eq!(members(&n), vec![v4(21)]);

    // With only an orphan, it is used once its wait is over.
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let mut n = node_with(vec![manycast(1, 4)], auth, open_server());
    n.handle_timeout(at(0.0));
    let tx = n.poll_transmit(at(0.0), wall(0.0)).expect("solicitation");
    n.handle_packet(at(0.01), tx.local, SocketAddr::new(v4(20), 123), wall(0.01), &orphan);
    run(&mut n, 0.25, MANYCAST_ORPHAN_WAIT_SECS + 0.5, &mut |_, _| None);
    assert_eq!(members(&n), vec![v4(20)]);
}

#[test]
fn manycast_replaces_lost_members_by_soliciting_again() {
    let k = key(4, Digest::Md5, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let mut n = node_with(vec![manycast(2, 4)], auth, open_server());
    let mut server = far_server(store1(&k));
    // Servers .10 and .11 exist at first; .12 appears later. Servers answer solicitations
    // and unicast polls while alive.
    let mut alive = vec![v4(10), v4(11)];
    let mut step = |n: &mut Node, from: f64, to: f64, alive: &[IpAddr]| {
        let mut t = from;
        while t <= to {
            n.handle_timeout(at(t));
            while let Some(tx) = n.poll_transmit(at(t), wall(t)) {
                match tx.local {
                    Local::Manycast(_) => {
                        for ip in alive {
                            if let Some(r) = mc_answer(&mut server, &synced(), t, &tx) {
                                let from = SocketAddr::new(*ip, 123);
                                n.handle_packet(at(t + 0.001), tx.local, from, wall(t + 0.001), &r);
                            }
                        }
                    }
                    _ if alive.contains(&tx.remote.ip()) => {
                        if let Some(r) = answer_with(&mut server, t, &tx) {
                            n.handle_packet(
                                at(t + 0.001),
                                tx.local,
                                tx.remote,
                                wall(t + 0.001),
                                &r,
                            );
                        }
                    }
                    _ => {}
                }
            }
            t += 0.25;
        }
    };
    step(&mut n, 0.0, 5.0, &alive);
    assert_eq!(members(&n), vec![v4(10), v4(11)]);
    let solicited = n.manycast_counters().solicitations;
    // .11 stops; .12 appears: the client notices, retires .11, solicits again, takes .12.
    alive = vec![v4(10), v4(12)];
    step(&mut n, 5.25, 40.0, &alive);
    assert_eq!(members(&n), vec![v4(10), v4(12)]);
    assert!(n.manycast_counters().solicitations > solicited);
    let retired = n.history().any(|h| h.address.ip() == v4(11) && h.kind == HistoryKind::Retired);
    assert!(retired);
}

#[test]
fn manycast_server_answers_only_keyed_solicitations_while_it_has_time() {
    let k = key(4, Digest::Sha1, SECRET);
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    // An orphan (tos orphan 3) has time to give, as ntpd's manycast server does.
    let mut n = node_with(Vec::new(), auth, open_server());
    let mut req = vec![0u8; 48];
    req[0] = 0x23;
    req[40] = 5;
    let plain = req.clone();
    k.append_mac(&mut req);
    let mut out = [0u8; 128];
    assert!(n.respond_manycast(at(1.0), wall(1.0), v4(50), &plain, &mut out).is_none());
    let mut bad = req.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(n.respond_manycast(at(1.0), wall(1.0), v4(50), &bad, &mut out).is_none());
    // A client that says stratum 2 knows better than a stratum-3 orphan.
    let mut better = plain.clone();
    better[1] = 2;
    k.append_mac(&mut better);
    assert!(n.respond_manycast(at(1.0), wall(1.0), v4(50), &better, &mut out).is_none());
    let len = n.respond_manycast(at(1.0), wall(1.0), v4(50), &req, &mut out).expect("answered");
    n.finish_reply(at(1.0), &mut out[..len], wall(1.0));
    assert_eq!(n.keys().check_reply(KeyId(4), &out[..len]), Ok(()));
    let c = n.manycast_server_counters();
    assert_eq!((c.requests, c.replies), (4, 1));
    for reason in ["unauthenticated", "auth_bad_mac", "stratum"] {
        assert_eq!(c.dropped.get(reason), Some(&1), "{reason}: {c:?}");
    }
    // Unsynchronized (no orphan mode): silent.
    let auth = AuthConfig { keys: store1(&k), control_key: None };
    let config = NodeConfig { auth, ..NodeConfig::default() };
    let mut n = Node::new(at(0.0), config, Box::new(SplitMix64::new(1)));
    assert!(n.respond_manycast(at(1.0), wall(1.0), v4(50), &req, &mut out).is_none());
    assert_eq!(n.manycast_server_counters().dropped.get("unsynchronized"), Some(&1));
}
