//! Prometheus / OpenMetrics metrics over HTTP (`metrics ADDRESS [port N]`): `GET /metrics`
//! answers the node's state in the OpenMetrics text format, encoded by the `prometheus-client`
//! crate. Every metric is listed in `docs/metrics.md`.
//!
//! Off unless configured, and only on a loopback address (the configuration refuses others):
//! the endpoint has no access control. The HTTP side is deliberately minimal: one request per
//! connection (`Connection: close`), a request head of at most [`MAX_REQUEST_BYTES`] read
//! within [`REQUEST_TIMEOUT`], at most [`MAX_CONNECTIONS`] connections at once (more are
//! closed at once), `GET` (and `HEAD`) of `/metrics` only. The metrics are built from the
//! node's views at each scrape, on the event loop: a scrape costs about what `rntpctl peers`
//! does.

use std::cell::Cell;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::{Registry, Unit};
use rntp_proto::auth::AuthError;
use rntp_proto::node::{Node, PeerKind, StatusView};
use rntp_proto::select::Verdict;
use rntp_proto::source::SourceKind;
use rntp_proto::time::Instant;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::clock::Clock;
use crate::shared::Shared;

/// Longest request head read.
pub const MAX_REQUEST_BYTES: usize = 8192;
/// Time a client gets to send its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once.
pub const MAX_CONNECTIONS: usize = 8;
/// The content type of the answer.
const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Binds the endpoint (a start-up error if the address is taken).
pub async fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves scrapes for as long as the event loop runs. `dropped_lines` is the statistics
/// writer's drop counter, if it runs.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    clock: Clock,
    dropped_lines: Option<Rc<Cell<u64>>>,
) {
    let open = Rc::new(Cell::new(0usize));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            // EMFILE and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        if open.get() >= MAX_CONNECTIONS {
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        let (open, shared, dropped) = (Rc::clone(&open), shared.clone(), dropped_lines.clone());
        tokio::task::spawn_local(async move {
            let _ = tokio::time::timeout(
                REQUEST_TIMEOUT * 2,
                handle(stream, &shared, clock, dropped.as_deref()),
            )
            .await;
            open.set(open.get().saturating_sub(1));
        });
    }
}

/// One connection: one request, one answer.
async fn handle(
    mut stream: TcpStream,
    shared: &Shared,
    clock: Clock,
    dropped: Option<&Cell<u64>>,
) -> io::Result<()> {
    let head = match tokio::time::timeout(REQUEST_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(head))) => head,
        Ok(Ok(None)) => {
            return respond(&mut stream, "400 Bad Request", "text/plain", "bad request\n", true)
                .await
        }
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let mut words = head.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            let now = clock.now();
            let text = shared.with(|node| render(node, now, dropped.map(Cell::get)));
            let body = text.unwrap_or_else(|_| "# EOF\n".to_string());
            respond(&mut stream, "200 OK", CONTENT_TYPE, &body, method == "GET").await
        }
        ("GET" | "HEAD", _) => {
            respond(
                &mut stream,
                "404 Not Found",
                "text/plain",
                "rntpd serves /metrics only\n",
                true,
            )
            .await
        }
        _ => respond(&mut stream, "405 Method Not Allowed", "text/plain", "GET only\n", true).await,
    }
}

/// The request line of a request head, or `None` if the head is too long or malformed.
async fn read_head(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 1024];
    loop {
        if buf.windows(4).any(|w| w == b"\r\n\r\n") || buf.windows(2).any(|w| w == b"\n\n") {
            break;
        }
        if buf.len() >= MAX_REQUEST_BYTES {
            return Ok(None);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    let line = buf.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = String::from_utf8_lossy(line).trim_end().to_string();
    Ok((!line.is_empty()).then_some(line))
}

async fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &str,
    with_body: bool,
) -> io::Result<()> {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await?;
    if with_body {
        stream.write_all(body.as_bytes()).await?;
    }
    stream.shutdown().await
}

/// Labels of one sample.
type Labels = Vec<(String, String)>;

/// Builds a registry of families from plain values.
struct Metrics {
    registry: Registry,
}

impl Metrics {
    fn gauge(&mut self, name: &str, help: &str, unit: Option<Unit>, samples: Vec<(Labels, f64)>) {
        if let [(labels, value)] = samples.as_slice() {
            if labels.is_empty() {
                let gauge = Gauge::<f64, AtomicU64>::default();
                gauge.set(*value);
                return self.register(name, help, unit, gauge);
            }
        }
        let family = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).set(value);
        }
        self.register(name, help, unit, family);
    }

    fn counter(&mut self, name: &str, help: &str, unit: Option<Unit>, samples: Vec<(Labels, u64)>) {
        if let [(labels, value)] = samples.as_slice() {
            if labels.is_empty() {
                let counter = Counter::<u64>::default();
                counter.inc_by(*value);
                return self.register(name, help, unit, counter);
            }
        }
        let family = Family::<Labels, Counter>::default();
        for (labels, value) in samples {
            family.get_or_create(&labels).inc_by(value);
        }
        self.register(name, help, unit, family);
    }

    fn register(
        &mut self,
        name: &str,
        help: &str,
        unit: Option<Unit>,
        metric: impl prometheus_client::registry::Metric,
    ) {
        // The encoder ends the help text with a period of its own.
        let help = help.trim_end_matches('.');
        match unit {
            Some(unit) => self.registry.register_with_unit(name, help, unit, metric),
            None => self.registry.register(name, help, metric),
        }
    }

    fn one(&mut self, name: &str, help: &str, unit: Option<Unit>, value: f64) {
        self.gauge(name, help, unit, vec![(Vec::new(), value)]);
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| ((*k).to_string(), (*v).to_string())).collect()
}

/// One `reason`-labelled sample per reason of `counts`, plus a zero for each reason of
/// `always` not counted yet: an alert on a reason (`auth_bad_mac`) has a series to watch
/// before the first event.
fn by_reason(
    counts: &std::collections::BTreeMap<&'static str, u64>,
    always: &[&[&'static str]],
) -> Vec<(Labels, u64)> {
    let mut all = counts.clone();
    for name in always.iter().flat_map(|names| names.iter()) {
        all.entry(name).or_default();
    }
    all.into_iter().map(|(k, v)| (labels(&[("reason", k)]), v)).collect()
}

/// Reasons a `:config` request is refused (node/remote.rs).
const CONFIG_REFUSALS: &[&str] = &[
    "nomodify",
    "no_controlkey",
    "unauthenticated",
    "wrong_key",
    "auth_unknown_key",
    "auth_untrusted_key",
    "auth_bad_mac",
    "parse_error",
    "command_failed",
];

/// Every metric, as OpenMetrics text.
pub fn render(
    node: &Node,
    now: Instant,
    dropped_lines: Option<u64>,
) -> Result<String, std::fmt::Error> {
    let mut m = Metrics { registry: Registry::with_prefix("rntpd") };
    let status = node.status(now);
    system(&mut m, node, &status);
    peers(&mut m, node, now);
    sources(&mut m, node, now);
    server(&mut m, node, &status);
    auth(&mut m, node);
    manycast(&mut m, node);
    if let Some(dropped) = dropped_lines {
        m.counter(
            "statistics_lines_dropped",
            "Statistics file lines dropped because the writer fell behind (slow disk).",
            None,
            vec![(Vec::new(), dropped)],
        );
    }
    let mut out = String::with_capacity(16 * 1024);
    encode(&mut out, &m.registry)?;
    Ok(out)
}

fn system(m: &mut Metrics, node: &Node, s: &StatusView) {
    let ppm = || Some(Unit::Other("ppm".into()));
    let secs = || Some(Unit::Seconds);
    m.gauge(
        "build_info",
        "rntpd's version (always 1).",
        None,
        vec![(labels(&[("version", env!("CARGO_PKG_VERSION"))]), 1.0)],
    );
    m.one("uptime", "Time since rntpd started.", secs(), s.uptime);
    m.one(
        "synchronized",
        "1 while a system peer is selected and the clock discipline tracks it, else 0.",
        None,
        f64::from(u8::from(node.synchronized())),
    );
    m.gauge(
        "serving_state",
        "How clients are answered: 1 for the current state (synchronized, orphan, unsynchronized).",
        None,
        ["synchronized", "orphan", "unsynchronized"]
            .into_iter()
            .map(|st| (labels(&[("state", st)]), f64::from(u8::from(s.serving_as.name() == st))))
            .collect(),
    );
    m.one(
        "stratum",
        "Stratum served to clients (16: unsynchronized).",
        None,
        f64::from(s.system.stratum),
    );
    m.one(
        "leap_indicator",
        "Leap indicator served to clients: 0 none, 1 insert, 2 delete, 3 unsynchronized.",
        None,
        f64::from(s.system.leap.to_bits()),
    );
    m.one("root_delay", "Root delay served to clients.", secs(), s.system.root_delay);
    m.one(
        "root_dispersion",
        "Root dispersion served to clients.",
        secs(),
        s.system.root_dispersion,
    );
    m.one(
        "offset",
        "Last clock offset handed to the discipline (positive: the servers are ahead).",
        secs(),
        s.last_offset.unwrap_or(0.0),
    );
    m.one(
        "system_offset",
        "Combined offset of the survivors in the latest selection.",
        secs(),
        s.system_offset.unwrap_or(0.0),
    );
    m.one(
        "system_jitter",
        "System jitter of the latest selection.",
        secs(),
        s.system_jitter.unwrap_or(0.0),
    );
    m.one("frequency", "Frequency correction of the local clock.", ppm(), s.frequency_ppm);
    let discipline = node.steering().discipline();
    m.one("clock_jitter", "Clock jitter estimated by the discipline.", secs(), discipline.jitter());
    m.one(
        "clock_wander",
        "Frequency uncertainty (wander) estimated by the discipline.",
        ppm(),
        discipline.frequency_error_ppm(),
    );
    m.one(
        "correction",
        "Observe mode: correction from the system clock to the time rntpd serves.",
        secs(),
        s.correction,
    );
    let stats = node.steering().stats();
    m.counter(
        "clock_updates",
        "Clock discipline updates.",
        None,
        vec![(Vec::new(), stats.updates)],
    );
    m.counter("clock_steps", "Clock steps.", None, vec![(Vec::new(), stats.steps)]);
    let c = &s.counters;
    m.counter(
        "client_requests_sent",
        "Requests sent to servers.",
        None,
        vec![(Vec::new(), c.sent)],
    );
    m.counter(
        "client_replies_received",
        "Datagrams received from servers.",
        None,
        vec![(Vec::new(), c.received)],
    );
    m.counter(
        "client_replies_accepted",
        "Replies that became a sample (or an acted-on kiss-o'-death).",
        None,
        vec![(Vec::new(), c.accepted)],
    );
    m.counter(
        "client_replies_dropped",
        "Datagrams from servers not used, by reason (auth_*: the reply's MAC did not verify).",
        None,
        by_reason(&c.dropped, &[AuthError::COUNTER_NAMES, &["auth_key_unusable"]]),
    );
}

fn verdict_name(v: Option<Verdict>) -> &'static str {
    match v {
        Some(Verdict::SystemPeer) => "system_peer",
        Some(Verdict::Survivor) => "candidate",
        Some(Verdict::Outlier) => "outlier",
        Some(Verdict::Falseticker) => "falseticker",
        Some(Verdict::Unusable(_)) => "unusable",
        None => "none",
    }
}

fn peers(m: &mut Metrics, node: &Node, now: Instant) {
    let rows = node.peers(now);
    let secs = || Some(Unit::Seconds);
    let (mut offset, mut delay, mut dispersion, mut jitter) = (vec![], vec![], vec![], vec![]);
    let (mut reach, mut poll, mut stratum, mut selected, mut drops) =
        (vec![], vec![], vec![], vec![], vec![]);
    for row in &rows {
        let Some(snap) = &row.snapshot else { continue };
        let pool = if row.kind == PeerKind::PoolMember { row.source_name.as_str() } else { "" };
        let address = snap.remote.to_string();
        let l = labels(&[("source", &row.source_name), ("address", &address), ("pool", pool)]);
        if let Some(e) = snap.estimate {
            offset.push((l.clone(), e.offset));
            delay.push((l.clone(), e.delay));
            dispersion.push((l.clone(), e.dispersion));
            jitter.push((l.clone(), e.jitter));
        }
        reach.push((l.clone(), f64::from(snap.reach)));
        poll.push((l.clone(), snap.poll.as_secs_f64()));
        if let Some(server) = snap.server {
            stratum.push((l.clone(), f64::from(server.stratum)));
        }
        let mut with_verdict = l.clone();
        with_verdict.push(("verdict".into(), verdict_name(row.verdict).into()));
        selected.push((with_verdict, 1.0));
        for (reason, n) in &row.drops {
            let mut with_reason = l.clone();
            with_reason.push(("reason".into(), (*reason).to_string()));
            drops.push((with_reason, *n));
        }
    }
    m.gauge(
        "peer_offset",
        "Filter offset of the association (positive: server ahead).",
        secs(),
        offset,
    );
    m.gauge("peer_delay", "Filter round-trip delay of the association.", secs(), delay);
    m.gauge("peer_dispersion", "Peer dispersion of the association.", secs(), dispersion);
    m.gauge("peer_jitter", "Peer jitter of the association.", secs(), jitter);
    m.gauge(
        "peer_reach",
        "Reachability register of the association (0-255; 255: the last 8 polls answered).",
        None,
        reach,
    );
    m.gauge("peer_poll", "Poll interval of the association.", secs(), poll);
    m.gauge("peer_stratum", "Stratum the server reported.", None, stratum);
    m.gauge(
        "peer_selection",
        "Selection verdict of the association in the latest round (label verdict; always 1).",
        None,
        selected,
    );
    m.counter(
        "peer_replies_dropped",
        "Replies of the association not used, by reason.",
        None,
        drops,
    );
}

fn sources(m: &mut Metrics, node: &Node, now: Instant) {
    let secs = || Some(Unit::Seconds);
    let (mut lookups, mut failures, mut ttl, mut next, mut expires, mut addrs) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut members, mut target, mut started, mut stopped, mut available) =
        (vec![], vec![], vec![], vec![], vec![]);
    for view in node.sources() {
        let s = &view.snapshot;
        let name = s.spec.target.to_string();
        let is_pool = s.spec.kind.has_members();
        let kind = match s.spec.kind {
            SourceKind::Server => "server",
            SourceKind::Pool { .. } => "pool",
            SourceKind::Manycast { .. } => "manycastclient",
        };
        let l = labels(&[("source", &name), ("kind", kind)]);
        let totals = node.source_totals(s.id);
        let named = matches!(s.spec.target, rntp_proto::source::Target::Name(_));
        if named {
            lookups.push((l.clone(), s.queries));
            for cause in [
                "nxdomain",
                "nodata",
                "no_usable_address",
                "servfail",
                "refused",
                "timeout",
                "other",
            ] {
                let n = totals.and_then(|t| t.dns_failures.get(cause)).copied().unwrap_or(0);
                let mut lc = l.clone();
                lc.push(("cause".into(), cause.into()));
                failures.push((lc, n));
            }
            if let Some(Ok((_, t))) = s.last_resolution.as_ref().map(|r| &r.outcome) {
                ttl.push((l.clone(), *t));
            }
            if let Some(at) = s.next_resolution {
                next.push((l.clone(), at.secs_since(now).max(0.0)));
            }
            if let Some(at) = s.valid_until {
                expires.push((l.clone(), at.secs_since(now)));
            }
            addrs.push((l.clone(), s.addrs.len() as f64));
        }
        if let Some(t) = totals {
            for (reason, n) in &t.mobilized {
                let mut lr = l.clone();
                lr.push(("reason".into(), (*reason).into()));
                started.push((lr, *n));
            }
            for (reason, n) in &t.retired {
                let mut lr = l.clone();
                lr.push(("reason".into(), (*reason).into()));
                stopped.push((lr, *n));
            }
        }
        if is_pool {
            let pl = labels(&[("source", &name)]);
            members.push((pl.clone(), s.assocs.len() as f64));
            target.push((pl.clone(), s.target.unwrap_or(0) as f64));
            if let Some(a) = s.replacements_available {
                available.push((pl, f64::from(a)));
            }
        }
    }
    m.counter("source_dns_lookups", "DNS lookups started for the source's name.", None, lookups);
    m.counter(
        "source_dns_failures",
        "Failed DNS lookups of the source's name, by cause.",
        None,
        failures,
    );
    m.gauge("source_dns_ttl", "TTL of the last good DNS answer.", secs(), ttl);
    m.gauge("source_dns_next_lookup", "Time until the next planned lookup.", secs(), next);
    m.gauge(
        "source_dns_expiry",
        "Time until the last good answer expires (negative: expired, addresses kept).",
        secs(),
        expires,
    );
    m.gauge("source_addresses", "Usable addresses in the last good DNS answer.", None, addrs);
    m.counter(
        "source_associations_started",
        "Associations started for the source, by reason (configured, pool-fill, replacement).",
        None,
        started,
    );
    m.counter(
        "source_associations_stopped",
        "Associations stopped (for a pool: replaced), by reason (unreachable, falseticker, kod-deny, ...).",
        None,
        stopped,
    );
    m.gauge("pool_members", "Associations the pool has now.", None, members);
    m.gauge("pool_target_members", "How many members the pool wants now.", None, target);
    m.gauge(
        "pool_replacements_available",
        "Replacements the pool may make at once now (its rate limit's tokens).",
        None,
        available,
    );
}

fn server(m: &mut Metrics, node: &Node, s: &StatusView) {
    if let Some(server) = &s.server {
        let c = &server.counters;
        m.counter(
            "server_requests",
            "Datagrams received on the server sockets (mode 6 excepted).",
            None,
            vec![(Vec::new(), c.requests)],
        );
        m.counter("server_replies", "Time replies sent.", None, vec![(Vec::new(), c.replies)]);
        m.counter(
            "server_kod",
            "Kiss-o'-death replies sent, by code.",
            None,
            vec![
                (labels(&[("code", "RATE")]), c.kod_rate),
                (labels(&[("code", "DENY")]), c.kod_deny),
            ],
        );
        m.counter(
            "server_dropped",
            "Requests dropped without reply, by reason.",
            None,
            c.dropped().map(|(k, v)| (labels(&[("reason", k)]), v)).collect(),
        );
        m.counter(
            "server_authenticated_replies",
            "Time replies signed because the request was authenticated with a trusted key.",
            None,
            vec![(Vec::new(), c.authenticated)],
        );
        m.counter(
            "server_crypto_nak",
            "Time replies sent as a crypto-NAK because the request's MAC did not verify.",
            None,
            vec![(Vec::new(), c.crypto_naks)],
        );
        m.counter(
            "server_auth_failures",
            "Time requests whose MAC did not verify, by reason (answered with a crypto-NAK or dropped).",
            None,
            c.auth_failures().map(|(k, v)| (labels(&[("reason", k)]), v)).collect(),
        );
        m.one(
            "server_rate_table_used",
            "Clients in the rate-limit table.",
            None,
            server.rate_table_used as f64,
        );
        m.one(
            "server_rate_table_capacity",
            "Slots in the rate-limit table.",
            None,
            server.rate_table_capacity as f64,
        );
    }
    let c = node.control_counters();
    m.counter(
        "control_requests",
        "Mode 6 (ntpq) requests received.",
        None,
        vec![(Vec::new(), c.requests)],
    );
    m.counter(
        "control_answered",
        "Mode 6 requests answered with data.",
        None,
        vec![(Vec::new(), c.answered)],
    );
    m.counter(
        "control_errors",
        "Mode 6 requests answered with an error code.",
        None,
        vec![(Vec::new(), c.errors)],
    );
    m.counter(
        "control_refused",
        "Mode 6 requests whose answer was over the reply budget (PERMISSION sent instead).",
        None,
        vec![(Vec::new(), c.refused)],
    );
    m.counter(
        "control_dropped",
        "Mode 6 requests dropped without answer, by reason.",
        None,
        c.dropped.iter().map(|(k, v)| (labels(&[("reason", k)]), *v)).collect(),
    );
    m.counter(
        "control_received",
        "Octets of mode 6 requests.",
        Some(Unit::Bytes),
        vec![(Vec::new(), c.bytes_in)],
    );
    m.counter(
        "control_sent",
        "Octets of mode 6 answers.",
        Some(Unit::Bytes),
        vec![(Vec::new(), c.bytes_out)],
    );
    m.counter(
        "control_datagrams_sent",
        "Datagrams of mode 6 answers.",
        None,
        vec![(Vec::new(), c.datagrams_out)],
    );
    m.counter(
        "control_signed",
        "Mode 6 answers signed because the request was authenticated.",
        None,
        vec![(Vec::new(), c.signed)],
    );
    m.counter(
        "control_config_accepted",
        "ntpq :config requests applied.",
        None,
        vec![(Vec::new(), c.config_accepted)],
    );
    m.counter(
        "control_config_refused",
        "ntpq :config requests refused (PERMISSION or an error text sent), by reason.",
        None,
        by_reason(&c.config_refused, &[CONFIG_REFUSALS]),
    );
}

fn auth(m: &mut Metrics, node: &Node) {
    let keys = node.keys();
    m.one("auth_keys", "Keys loaded from the key file.", None, keys.len() as f64);
    m.one(
        "auth_trusted_keys",
        "Loaded keys that are trusted (trustedkey): only these authenticate.",
        None,
        keys.keys().filter(|k| keys.is_trusted(k.id())).count() as f64,
    );
}

fn manycast(m: &mut Metrics, node: &Node) {
    let c = node.manycast_counters();
    m.counter(
        "manycast_solicitations_sent",
        "Manycast client: solicitations sent to the groups.",
        None,
        vec![(Vec::new(), c.solicitations)],
    );
    m.counter(
        "manycast_answers_received",
        "Manycast client: datagrams received in answer to solicitations.",
        None,
        vec![(Vec::new(), c.received)],
    );
    m.counter(
        "manycast_answers_accepted",
        "Manycast client: authenticated answers whose server became a candidate.",
        None,
        vec![(Vec::new(), c.offers)],
    );
    m.counter(
        "manycast_answers_dropped",
        "Manycast client: answers not used, by reason (auth_*: the MAC or key did not match).",
        None,
        by_reason(&c.dropped, &[AuthError::COUNTER_NAMES, &["bogus_origin", "unsynchronized"]]),
    );
    let s = node.manycast_server_counters();
    m.counter(
        "manycast_server_requests",
        "Manycast server: solicitations received on the group sockets.",
        None,
        vec![(Vec::new(), s.requests)],
    );
    m.counter(
        "manycast_server_replies",
        "Manycast server: solicitations answered (signed, by unicast).",
        None,
        vec![(Vec::new(), s.replies)],
    );
    m.counter(
        "manycast_server_declined",
        "Manycast server: solicitations not answered, by reason.",
        None,
        by_reason(
            &s.dropped,
            &[
                &["restricted", "unauthenticated"],
                AuthError::COUNTER_NAMES,
                &["unsynchronized", "stratum", "rate_limited"],
            ],
        ),
    );
}
