//! The harness's own NTP oracle: one-shot SNTP exchanges from the shared test kit
//! ([`rntp_testkit::ntp`], independent of rntp-proto), plus waiting for a server to be synced.

use std::net::SocketAddr;
use std::time::Duration;

pub use rntp_testkit::ntp::{exchange as query, exchange_best as query_best, NtpReply};

/// Queries until the server answers with `leap` 0 and `stratum`, for up to `timeout`; returns
/// the last reply, or why not.
pub fn wait_synced(server: SocketAddr, stratum: u8, timeout: Duration) -> Result<NtpReply, String> {
    super::wait_until(&format!("{server} to answer stratum {stratum}, leap 0"), timeout, || {
        match query(server, Duration::from_millis(500)) {
            Ok(r) if r.leap == 0 && r.stratum == stratum => Ok(r),
            Ok(r) => Err(format!("last reply {r:?}")),
            Err(e) => Err(format!("last query: {e}")),
        }
    })
}
