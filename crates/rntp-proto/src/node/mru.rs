//! The node's MRU list (`ntpq -c mrulist`): filled on the server fast path, read through
//! REQ_NONCE and READ_MRU.
//!
//! * Counting ([`Control::record_client`], from [`Node::respond_from`]): every NTP packet
//!   (not mode 6 or 7) from a client `restrict` does not `ignore`, that parses as an NTP
//!   header, answered or not, as ntpd's `ntp_monitor`. O(1), allocation-free.
//! * REQ_NONCE: `nonce=...`, within the usual reply budget (a 12-byte request from a
//!   non-local client gets `PERMISSION`: the 44-byte nonce answer would amplify).
//! * READ_MRU: without a nonce this node issued to the same address within 16 s, nothing at
//!   all (counted `bad_nonce`). With one, **the reply budget is lifted**: the nonce came back
//!   from the address it was sent to, so the source is not spoofed and the answer (up to 32
//!   datagrams, as ntpd) goes to whoever asked for it. This is ntpd's reasoning too.
//!
//! Who may ask at all is decided before (`restrict`, `noquery`, the query rate limit), as for
//! every mode 6 request; see `node/mode6.rs`.

use std::net::{IpAddr, SocketAddr};

use super::mode6::Control;
use super::Node;
use crate::mode6::{mru, ControlRepr, DropReason, ErrorCode, Opcode, Replies, ReplyBudget};
use crate::server::mru::ntpd_restrict_bits;
use crate::server::{IgnoreReason, MruList, ReplyKind, RestrictFlags, ServerAction};
use crate::time::{Instant, NtpTimestamp};
use crate::wire::KissCode;

impl Control {
    /// Counts one NTP packet from `client` (canonical address) in the MRU list, given what the
    /// server did with it and the `restrict` flags that applied.
    pub(super) fn record_client(
        &mut self,
        client: SocketAddr,
        rx: NtpTimestamp,
        request: &[u8],
        action: &ServerAction,
        flags: RestrictFlags,
    ) {
        let limited = match action {
            ServerAction::Reply { kind: ReplyKind::Kod(KissCode::Rate), .. } => true,
            ServerAction::Ignore(IgnoreReason::RateLimited | IgnoreReason::KodLimited) => true,
            // As ntpd: ignored clients, queries, and what is not an NTP packet are not listed.
            ServerAction::Ignore(
                IgnoreReason::RestrictIgnore
                | IgnoreReason::ModeControl
                | IgnoreReason::ModePrivate
                | IgnoreReason::Malformed(_)
                | IgnoreReason::SourcePortZero
                | IgnoreReason::TooLong,
            ) => return,
            _ => false,
        };
        let Some(&first) = request.first() else { return };
        self.mru.record(client, rx, first & 0x3F, ntpd_restrict_bits(flags, limited));
    }
}

impl Node {
    /// The MRU list of NTP clients.
    pub fn mru_list(&self) -> &MruList {
        &self.control.mru
    }

    /// Answers REQ_NONCE or READ_MRU (see the module doc). `rx` is the request's receive time,
    /// on the clock of the list's entries.
    pub(super) fn mru_control(
        &mut self,
        now: Instant,
        rx: NtpTimestamp,
        client: IpAddr,
        request: &[u8],
        opcode: Opcode,
        budget: ReplyBudget,
    ) -> Replies {
        let leap = self.system.leap;
        let Ok(repr) = ControlRepr::parse(request) else {
            return Replies::error(request, leap, ErrorCode::BadFormat, budget);
        };
        let fresh = self.control.nonces.issue(client, now);
        if opcode == Opcode::RequestNonce {
            // ntpd's text: the item and its line end.
            return Replies::text(request, leap, format!("nonce={fresh}\r\n").into_bytes(), budget);
        }
        let parsed = mru::parse_query(repr.data);
        if !parsed.nonce.is_some_and(|n| self.control.nonces.check(n, client, now)) {
            return Replies::none(DropReason::BadNonce);
        }
        // The nonce proves the address: no amplification to a third party is possible.
        let budget = ReplyBudget::Unlimited;
        match parsed.query.and_then(|q| mru::body(&q, &self.control.mru, rx, &fresh)) {
            Ok(body) => Replies::text(request, leap, body, budget),
            Err(code) => Replies::error(request, leap, code, budget),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::mode6::ControlPacket;
    use crate::node::NodeConfig;
    use crate::rng::SplitMix64;
    use crate::server::mru::res;
    use crate::server::ServerConfig;

    const LOCAL: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1));
    const OTHER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 18, 0, 2));

    fn node(server: ServerConfig) -> Node {
        let config = NodeConfig { server, ..NodeConfig::default() };
        Node::new(Instant::from_nanos(1), config, Box::new(SplitMix64::new(7)))
    }

    /// Queries and time opened to everyone (the reply budget still applies).
    fn open() -> ServerConfig {
        ServerConfig { default_flags: RestrictFlags::NONE, ..ServerConfig::default() }
    }

    fn at(secs: f64) -> Instant {
        Instant::from_nanos((secs * 1e9) as u64)
    }

    fn wall(secs: f64) -> NtpTimestamp {
        NtpTimestamp::from_bits(0xE9A1_0000_0000_0000 + ((secs * 4_294_967_296.0) as u64))
    }

    fn control(opcode: Opcode, data: &[u8]) -> Vec<u8> {
        crate::node::mode6::tests::request(opcode, 0, data)
    }

    /// All datagrams of the answer.
    fn ask(n: &mut Node, t: f64, client: IpAddr, req: &[u8]) -> Vec<Vec<u8>> {
        let mut out = [0u8; 1024];
        let mut all = Vec::new();
        let src = SocketAddr::new(client, 40000);
        let mut len = match n.respond_from(at(t), wall(t), src, req, &mut out) {
            ServerAction::Reply { len, .. } => Some(len),
            ServerAction::Ignore(_) => None,
        };
        while let Some(l) = len {
            all.push(out[..l].to_vec());
            len = n.poll_control_reply(&mut out);
        }
        all
    }

    /// The text of a multi-datagram answer, or its error code.
    fn text(answer: &[Vec<u8>]) -> Result<String, u8> {
        let mut body = Vec::new();
        for d in answer {
            let p = ControlPacket::new_checked(&d[..]).expect("parses");
            if p.is_error() {
                return Err((p.status() >> 8) as u8);
            }
            body.extend_from_slice(p.data());
        }
        Ok(String::from_utf8(body).expect("text"))
    }

    fn value(text: &str, key: &str) -> Option<String> {
        text.split(',').map(str::trim).find_map(|kv| {
            let (k, v) = kv.split_once('=')?;
            (k == key).then(|| v.to_string())
        })
    }

    fn time_request(n: &mut Node, t: f64, src: SocketAddr) -> ServerAction {
        let mut req = [0u8; 48];
        req[0] = 0x23;
        req[40..48].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let mut out = [0u8; 64];
        n.respond_from(at(t), wall(t), src, &req, &mut out)
    }

    fn nonce(n: &mut Node, t: f64, client: IpAddr) -> String {
        let answer = text(&ask(n, t, client, &control(Opcode::RequestNonce, b""))).expect("nonce");
        answer.trim().to_string()
    }

    #[test]
    fn handshake_lists_clients_with_counts_newest_first() {
        let mut n = node(ServerConfig::default());
        let a = SocketAddr::from(([192, 0, 2, 1], 123));
        let b = SocketAddr::from(([192, 0, 2, 2], 50123));
        for (i, src) in [a, b, a, a].into_iter().enumerate() {
            let action = time_request(&mut n, 1.0 + 2.0 * i as f64, src);
            assert!(matches!(action, ServerAction::Reply { .. }), "{action:?}");
        }
        // Queries from loopback are not listed; the handshake's nonce comes first.
        let nonce = nonce(&mut n, 10.0, LOCAL);
        assert!(nonce.starts_with("nonce=") && nonce.len() == 30, "{nonce}");
        let req = control(Opcode::ReadMru, format!("{nonce}, frags=32").as_bytes());
        let t = text(&ask(&mut n, 10.5, LOCAL, &req)).expect("answer");
        // Oldest first on the wire (ntpq prints it reversed): b, then a (newest).
        assert_eq!(value(&t, "addr.0").as_deref(), Some("192.0.2.2:50123"));
        assert_eq!(value(&t, "ct.0").as_deref(), Some("1"));
        assert_eq!(value(&t, "addr.1").as_deref(), Some("192.0.2.1:123"));
        assert_eq!(value(&t, "ct.1").as_deref(), Some("3"));
        assert_eq!(value(&t, "mv.1").as_deref(), Some("35"));
        assert_eq!(value(&t, "addr.2"), None);
        assert_eq!(value(&t, "last.newest"), value(&t, "last.1"));
        assert!(value(&t, "now").is_some());
        // A nonce for the next request (the same within one second).
        let next = value(&t, "nonce").expect("nonce");
        assert!(n.control.nonces.check(&next, LOCAL, at(26.0)));
        assert_eq!(n.mru_list().len(), 2);
    }

    #[test]
    fn rate_limited_clients_carry_limited_and_kod() {
        let mut n = node(ServerConfig::default());
        let a = SocketAddr::from(([192, 0, 2, 1], 123));
        // Default flags are `kod limited noquery`: back-to-back requests get limited.
        for i in 0..20 {
            time_request(&mut n, 1.0 + 0.01 * f64::from(i), a);
        }
        let e = n.mru_list().newest().expect("entry").1;
        assert_eq!(e.count, 20);
        assert_eq!(e.restrict, res::NOQUERY | res::LIMITED | res::KOD);
        // The next one well spaced passes: `limited` and `kod` are cleared again.
        time_request(&mut n, 600.0, a);
        assert_eq!(n.mru_list().newest().expect("entry").1.restrict, res::NOQUERY);
    }

    #[test]
    fn read_mru_without_a_valid_nonce_gets_nothing() {
        let mut n = node(open());
        time_request(&mut n, 1.0, SocketAddr::from(([192, 0, 2, 1], 123)));
        let good = nonce(&mut n, 2.0, LOCAL);
        let cases = [
            ("none", "frags=32".to_string(), 2.0, LOCAL),
            ("forged", "nonce=0000000200000000deadbeef, frags=32".into(), 2.0, LOCAL),
            ("stale", format!("{good}, frags=32"), 19.0, LOCAL),
            ("other address", format!("{good}, frags=32"), 2.0, OTHER),
        ];
        for (what, data, t, client) in cases {
            let answer = ask(&mut n, t, client, &control(Opcode::ReadMru, data.as_bytes()));
            assert!(answer.is_empty(), "{what}: {answer:?}");
        }
        assert_eq!(n.control_counters().dropped.get("bad_nonce"), Some(&4));
        // Still good within 16 s.
        let req = control(Opcode::ReadMru, format!("{good}, frags=32").as_bytes());
        assert!(text(&ask(&mut n, 17.9, LOCAL, &req)).is_ok());
    }

    #[test]
    fn errors_for_what_is_not_implemented() {
        let mut n = node(ServerConfig::default());
        let nonce = nonce(&mut n, 1.0, LOCAL);
        for (data, code) in [
            (format!("{nonce}, frags=32, laddr=127.0.0.1"), 2u8),
            (format!("{nonce}, frags=32, minscore=1"), 2),
            (nonce.clone(), 6),
            (format!("{nonce}, frags=4, addr.0=192.0.2.9:123, last.0=0x1.0"), 5),
        ] {
            let answer = ask(&mut n, 1.5, LOCAL, &control(Opcode::ReadMru, data.as_bytes()));
            assert_eq!(text(&answer), Err(code), "{data}");
        }
    }

    /// The budget decision: REQ_NONCE stays within the non-local budget (so a spoofed one
    /// reflects nothing larger than itself); a READ_MRU with a valid nonce is answered in
    /// full, since the nonce proves the address.
    #[test]
    fn a_valid_nonce_lifts_the_budget_for_non_local_clients() {
        let mut n = node(open());
        for i in 0..40u8 {
            time_request(&mut n, 1.0, SocketAddr::from(([192, 0, 2, i], 123)));
        }
        // Unpadded REQ_NONCE from afar: the 44-byte answer is over the 12-byte budget.
        let short = control(Opcode::RequestNonce, b"");
        assert_eq!(text(&ask(&mut n, 2.0, REMOTE, &short)), Err(1), "PERMISSION");
        // Padded to the answer's size (the budget is the request's length), it gets one.
        let mut padded = short.clone();
        padded.resize(44, 0);
        let answer = ask(&mut n, 2.0, REMOTE, &padded);
        assert_eq!(answer.iter().map(Vec::len).sum::<usize>(), 44);
        let nonce = text(&answer).expect("nonce").trim().to_string();
        // READ_MRU with it: several datagrams, far more than the request.
        let req = control(Opcode::ReadMru, format!("{nonce}, frags=32").as_bytes());
        let answer = ask(&mut n, 2.5, REMOTE, &req);
        let out: usize = answer.iter().map(Vec::len).sum();
        assert!(
            answer.len() > 1 && out > 10 * req.len(),
            "{} datagrams, {out} octets",
            answer.len()
        );
        let t = text(&answer).expect("answer");
        assert_eq!(value(&t, "addr.39").as_deref(), Some("192.0.2.39:123"));
        // The same nonce from another (spoofed) address: nothing.
        assert!(ask(&mut n, 2.5, OTHER, &req).is_empty());
    }

    #[test]
    fn resuming_walks_a_long_list_like_ntpq() {
        let mut n = node(ServerConfig::default());
        for i in 0..200u32 {
            let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0xC000_0200 + i)), 123);
            time_request(&mut n, 1.0 + f64::from(i) * 0.001, src);
        }
        // NTPsec's loop: ask with frags, then resume from the newest entry received.
        let mut got: Vec<String> = Vec::new();
        let mut last: Option<(String, String)> = None;
        let mut nonce = nonce(&mut n, 2.0, LOCAL);
        for round in 0..20 {
            let mut data = format!("{nonce}, frags=3");
            if let Some((addr, ts)) = &last {
                data.push_str(&format!(", addr.0={addr}, last.0={ts}"));
            }
            let t = text(&ask(&mut n, 2.0, LOCAL, &control(Opcode::ReadMru, data.as_bytes())))
                .expect("answer");
            nonce = format!("nonce={}", value(&t, "nonce").expect("nonce"));
            let mut i = 0;
            while let Some(addr) = value(&t, &format!("addr.{i}")) {
                last = Some((addr.clone(), value(&t, &format!("last.{i}")).expect("last")));
                got.push(addr);
                i += 1;
            }
            assert!(i > 0, "round {round}: no entries\n{t}");
            if value(&t, "now").is_some() {
                break;
            }
        }
        assert_eq!(got.len(), 200, "every client once");
        assert_eq!(got[0], "192.0.2.0:123");
        assert_eq!(got[199], "192.0.2.199:123");
    }

    #[test]
    fn mru_list_is_bounded_under_a_spoofed_flood() {
        let mut n = node(ServerConfig::default());
        let mut rng = SplitMix64::new(3);
        for i in 0..50_000u32 {
            let r = crate::rng::RngSource::next_u64(&mut rng);
            let src = SocketAddr::new(IpAddr::V4(Ipv4Addr::from(r as u32)), (r >> 32) as u16);
            time_request(&mut n, 1.0 + f64::from(i) * 1e-4, src);
        }
        let mru = n.mru_list();
        assert_eq!(mru.len(), mru.capacity());
        assert_eq!(mru.capacity(), crate::server::mru::MRU_CAPACITY);
    }
}
