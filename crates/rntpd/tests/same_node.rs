//! The daemon and the simulator build the same node from the same ntp.conf: rntpd's state after
//! start, read through rntpctl, equals the state of the node `rntp_sim::node_from_config_text`
//! builds from the same text (same sources with the same ids and lines, same associations with
//! the same ids and addresses, same server state). No time source answers in this test, so
//! nothing the network does can make the two differ; what is compared is construction.

mod support;

use rntp_proto::node::ClockMode;
use rntp_proto::node::PeerKind;
use serde_json::Value;
use support::rntpd::Rntpd;
use support::{Net, TestDir};

static NET: Net = Net::new(61);

#[test]
fn daemon_and_simulator_build_the_same_node() {
    let dir = TestDir::new();
    let block = NET.allocate();
    // Addresses nobody serves, a pool whose resolver never answers, a duplicate line, orphan
    // mode and a listen address: every construction rule gets exercised.
    let config = format!(
        "server {a} port 11123 iburst\n\
         server {b} port 11123 minpoll 5 maxpoll 7\n\
         server {a} port 11123\n\
         pool pool.same.test maxsources 3\n\
         resolver {dns}:11053\n\
         tos orphan 6 maxclock 8\n\
         interface listen {l} port 11124\n",
        a = block.addr(1),
        b = block.addr(2),
        dns = block.addr(3),
        l = block.addr(4),
    );
    let rntpd = Rntpd::start(dir.path(), &config);
    let node =
        rntp_sim::node_from_config_text(&config, ClockMode::Observe, 1).expect("the config parses");
    let now = rntp_proto::time::Instant::ZERO;

    // Sources: ids, kinds, names, ports and the lines they came from.
    let out = rntpd.ctl_ok(&["sources", "--json"]);
    let daemon: Value = serde_json::from_str(&out).expect("sources --json");
    let daemon = daemon.as_array().expect("an array");
    let sim = node.sources();
    assert_eq!(daemon.len(), sim.len(), "{out}");
    for (d, s) in daemon.iter().zip(&sim) {
        assert_eq!(d["id"], s.snapshot.id.0, "{d}");
        assert_eq!(d["name"], s.snapshot.spec.target.to_string(), "{d}");
        assert_eq!(d["port"], s.snapshot.spec.port, "{d}");
        // file:line; the files differ in name only.
        let line = |o: &str| o.rsplit(':').next().unwrap_or_default().to_string();
        assert_eq!(line(d["origin"].as_str().unwrap_or("")), line(&s.origin), "{d}");
        let assocs: Vec<u32> = s.snapshot.assocs.iter().map(|(a, _)| a.0).collect();
        assert_eq!(d["associations"], serde_json::json!(assocs), "{d}");
    }

    // Associations: the same ids, owners and addresses; a pool row for the pool.
    let peers = rntpd.peers_json();
    let rows = node.peers(now);
    assert_eq!(peers.len(), rows.len(), "{peers:?}");
    for (d, s) in peers.iter().zip(&rows) {
        assert_eq!(d["id"], serde_json::json!(s.assoc.map(|a| a.0)), "{d}");
        assert_eq!(d["source_id"], s.source.0, "{d}");
        assert_eq!(d["kind"], s.kind.name(), "{d}");
        let address = s.snapshot.as_ref().map(|a| a.remote.to_string()).unwrap_or_default();
        assert_eq!(d["address"], address, "{d}");
    }
    assert!(rows.iter().any(|r| r.kind == PeerKind::Pool));

    // What clients are told: an orphan parent at stratum 6, before any source answers.
    let status = rntpd.status_json();
    let s = node.status(now);
    assert_eq!(status["stratum"], s.system.stratum);
    assert_eq!(status["serving_as"], s.serving_as.name());
    assert_eq!(status["sources"], s.sources);
    assert_eq!(status["associations"], s.associations);
    assert_eq!(status["mode"], s.mode);
    assert_eq!(s.system.stratum, 6);
}
