//! The steering directives: `maxslewrate` (chrony's), `leapfile` (ntpd's), `leapsmear` (rntpd's;
//! ntpd's `leapsmearinterval` read as the same), and what they become in the node's settings.

use std::io;
use std::path::{Path, PathBuf};

use rntp_config::{parse_str, ConfigErrors, DiagnosticKind, Expected, Loaded, Severity};
use rntp_proto::discipline::DEFAULT_MAX_SLEW_PPM;
use rntp_proto::node::ClockMode;

fn parse(text: &str) -> Result<Loaded, ConfigErrors> {
    parse_str(Path::new("/etc/ntp.conf"), text, &mut |_| {
        Err(io::Error::new(io::ErrorKind::NotFound, "no includes"))
    })
}

fn only_error(text: &str) -> DiagnosticKind {
    let mut e = parse(text).expect_err("expected an error").errors;
    assert_eq!(e.len(), 1, "{e:?}");
    e.remove(0).kind
}

#[test]
fn values_and_defaults() {
    let loaded = parse("server 192.0.2.1\n").unwrap();
    let c = &loaded.config;
    assert_eq!((c.maxslewrate_ppm, c.leapsmear_secs, c.leapfile.as_ref()), (None, None, None));
    let node = rntp_config::node::node_config(c, ClockMode::Control);
    assert_eq!(node.discipline.max_slew_ppm, DEFAULT_MAX_SLEW_PPM);
    assert_eq!(node.leap.smear, None);

    let loaded = parse(
        "server 192.0.2.1\nmaxslewrate 500\nleapfile /usr/share/zoneinfo/leap-seconds.list\n\
         leapsmear 86400\n",
    )
    .unwrap();
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let c = &loaded.config;
    assert_eq!(c.maxslewrate_ppm, Some(500));
    assert_eq!(c.leapsmear_secs, Some(86_400));
    assert_eq!(c.leapfile, Some(PathBuf::from("/usr/share/zoneinfo/leap-seconds.list")));
    let node = rntp_config::node::node_config(c, ClockMode::Control);
    assert_eq!(node.discipline.max_slew_ppm, 500.0);
    assert_eq!(node.leap.smear, Some(86_400.0));
    assert!(node.leap.table.is_none(), "the driver reads the table");
}

#[test]
fn ntpds_leapsmearinterval_is_leapsmear() {
    let c = parse("leapsmearinterval 7200\n").unwrap().config;
    assert_eq!(c.leapsmear_secs, Some(7_200));
}

#[test]
fn out_of_range_values_are_errors() {
    let bad = |what: &str, min, max, found: &str| DiagnosticKind::BadValue {
        what: what.into(),
        expected: Expected::Integer { min, max },
        found: found.into(),
    };
    assert_eq!(only_error("maxslewrate 0\n"), bad("maxslewrate", 1, 83_333, "0"));
    assert_eq!(only_error("maxslewrate 90000\n"), bad("maxslewrate", 1, 83_333, "90000"));
    assert_eq!(only_error("maxslewrate fast\n"), bad("maxslewrate", 1, 83_333, "fast"));
    assert_eq!(only_error("leapsmear 10\n"), bad("leapsmear", 60, 172_800, "10"));
    assert!(matches!(only_error("leapfile\n"), DiagnosticKind::MissingValue { .. }));
    assert!(matches!(only_error("maxslewrate\n"), DiagnosticKind::MissingValue { .. }));
    assert!(matches!(only_error("leapfile /a /b\n"), DiagnosticKind::UnexpectedArgument { .. }));
    assert!(matches!(only_error("leapsmear 600 600\n"), DiagnosticKind::UnexpectedArgument { .. }));
}

#[test]
fn a_repeat_warns_and_the_last_one_wins() {
    let loaded = parse("maxslewrate 500\nmaxslewrate 1000\n").unwrap();
    assert_eq!(loaded.config.maxslewrate_ppm, Some(1_000));
    assert_eq!(loaded.warnings.len(), 1, "{:?}", loaded.warnings);
    assert_eq!(loaded.warnings[0].kind.severity(), Severity::Warning);
    assert!(matches!(loaded.warnings[0].kind, DiagnosticKind::RepeatedDirective { .. }));
}
