//! The resolver against the fake DNS server of the integration tests: what one lookup sends
//! for each outcome, `-4`/`-6`, a closed port, and a resolver configuration that changes.

use std::net::{Ipv4Addr, UdpSocket};
use std::time::Instant as StdInstant;

use super::fakedns::{self, FakeDns, Rule};
use super::*;

fn lookup(name: &str, family: AddrFamily) -> Lookup {
    Lookup { source: rntp_proto::source::SourceId(1), name: name.to_string(), family }
}

/// A fake DNS server on 127.0.0.1, any port, and a resolver using only it.
fn fixed() -> (FakeDns, Dns) {
    let server = FakeDns::start("127.0.0.1:0".parse().unwrap());
    let dir = std::env::temp_dir();
    let dns = Dns::with_files(&[server.addr()], dir.join("no-resolv.conf"), dir.join("no-hosts"));
    (server, dns)
}

#[tokio::test]
async fn minus_4_and_minus_6_send_one_query_type() {
    let (server, dns) = fixed();
    let v4: IpAddr = "127.0.1.1".parse().unwrap();
    let v6: IpAddr = "fd00::1".parse().unwrap();
    for (name, family, want) in [
        ("any.test", AddrFamily::Any, vec![v4, v6]),
        ("four.test", AddrFamily::V4, vec![v4]),
        ("six.test", AddrFamily::V6, vec![v6]),
    ] {
        server.set_rule(name, Rule::Answer { addrs: vec![v4, v6], ttl: 60 });
        let r = dns.resolve(&lookup(name, family), Clock::new()).await.expect("answer");
        let mut got = r.addrs.clone();
        got.sort();
        assert_eq!(got, want, "{name}");
        let (a, aaaa) = (server.queries(name, fakedns::A), server.queries(name, fakedns::AAAA));
        let expect = match family {
            AddrFamily::Any => (1, 1),
            AddrFamily::V4 => (1, 0),
            AddrFamily::V6 => (0, 1),
        };
        assert_eq!((a, aaaa), expect, "{name}: A and AAAA queries");
    }
}

#[tokio::test]
async fn failures_cost_one_query_per_type() {
    let (server, dns) = fixed();
    server.set_rule("sf.test", Rule::ServFail);
    server.set_rule("nx.test", Rule::NxDomain { negative_ttl: 60 });
    server.set_rule("ref.test", Rule::Refused);
    for (name, want) in [
        ("sf.test", ResolveError::ServFail),
        ("nx.test", ResolveError::NxDomain),
        ("ref.test", ResolveError::Refused),
    ] {
        let err = dns.lookup(name, Clock::new()).await.expect_err(name);
        assert_eq!(err, want, "{name}");
        let counts = (server.queries(name, fakedns::A), server.queries(name, fakedns::AAAA));
        assert_eq!(counts, (1, 1), "{name}: queries per type");
    }
}

#[tokio::test]
async fn a_silent_server_gets_at_most_two_copies_per_type() {
    let (server, dns) = fixed();
    server.set_rule("drop.test", Rule::Drop);
    let t = StdInstant::now();
    let err = dns.lookup("drop.test", Clock::new()).await.expect_err("silence");
    assert_eq!(err, ResolveError::Timeout);
    let took = t.elapsed();
    let counts =
        (server.queries("drop.test", fakedns::A), server.queries("drop.test", fakedns::AAAA));
    println!("timeout after {took:?}; {counts:?} A and AAAA queries");
    assert!(counts.0 <= 2 && counts.1 <= 2, "{counts:?}");
    assert!(counts.0 >= 1 && counts.1 >= 1, "{counts:?}");
}

#[tokio::test]
async fn a_closed_resolver_port_fails_at_once_with_refused() {
    // A port nothing listens on: bound, then closed.
    let port = UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = std::env::temp_dir();
    let closed = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let dns = Dns::with_files(&[closed], dir.join("no-resolv.conf"), dir.join("no-hosts"));
    let t = StdInstant::now();
    let err = dns.lookup("ntp.test", Clock::new()).await.expect_err("closed port");
    let took = t.elapsed();
    assert_eq!(err, ResolveError::ConnectionRefused, "{err}");
    assert!(took < Duration::from_secs(1), "refused after {took:?}");
    assert!(err.to_string().contains("refused"));
}

/// A loopback address whose port 53 is free, for a resolv.conf (which cannot name a port).
fn port_53_address() -> Ipv4Addr {
    let base = std::process::id() % 200;
    (0..50)
        .map(|k| Ipv4Addr::new(127, 253, ((base + k) % 250 + 1) as u8, 53))
        .find(|ip| UdpSocket::bind((*ip, 53)).is_ok())
        .expect("no free 127.253.x.53:53 (binding port 53 needs root)")
}

#[tokio::test]
async fn resolv_conf_and_hosts_are_followed_when_they_change() {
    let dir = tempfile::tempdir().unwrap();
    let (conf, hosts) = (dir.path().join("resolv.conf"), dir.path().join("hosts"));
    std::fs::write(&conf, "# nothing yet\nsearch example.org\n").unwrap();
    std::fs::write(&hosts, "127.0.1.7 static.test\n").unwrap();
    let dns = Dns::with_files(&[], conf.clone(), hosts.clone());

    // No name server: fails at once, nothing sent; /etc/hosts still answers.
    let t = StdInstant::now();
    let err = dns.lookup("ntp.test", Clock::new()).await.expect_err("no name server");
    assert_eq!(err, ResolveError::NoNameServer);
    assert!(t.elapsed() < Duration::from_secs(1));
    let r = dns.lookup("static.test", Clock::new()).await.expect("from the hosts file");
    assert_eq!(r.addrs, vec!["127.0.1.7".parse::<IpAddr>().unwrap()]);

    // The file is fixed: the next lookup uses it.
    let ip = port_53_address();
    let server = FakeDns::start(SocketAddr::from((ip, 53)));
    server
        .set_rule("ntp.test", Rule::Answer { addrs: vec!["127.0.1.9".parse().unwrap()], ttl: 60 });
    std::fs::write(&conf, format!("nameserver {ip}\n")).unwrap();
    let r = dns.lookup("ntp.test", Clock::new()).await.expect("resolved after the fix");
    assert_eq!(r.addrs, vec!["127.0.1.9".parse::<IpAddr>().unwrap()]);

    // The hosts file changes too (same size, so only the time or inode tells).
    std::fs::write(&hosts, "127.0.1.8 static.test\n").unwrap();
    let later = std::time::SystemTime::now() + Duration::from_secs(2);
    std::fs::File::options().write(true).open(&hosts).unwrap().set_modified(later).unwrap();
    let r = dns.lookup("static.test", Clock::new()).await.expect("from the new hosts file");
    assert_eq!(r.addrs, vec!["127.0.1.8".parse::<IpAddr>().unwrap()]);
    // Dotted names never go through the search list.
    assert_eq!(server.queries("ntp.test.example.org", fakedns::A), 0);
}
