//! `rntpctl peers --json` with 10 000 associations: the reply spans several control frames
//! (no frame above the 1 MiB cap) and rntpctl joins them. The daemon side is a stand-in that
//! answers one request with `rntp_control::encode_reply_frames`, exactly what rntpd sends.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::process::Command;

use rntp_control::{
    decode_payload, encode_reply_frames, frame_len, PeerInfo, Reply, Request, FRAME_HEADER_LEN,
};

fn peer(i: u32) -> PeerInfo {
    PeerInfo {
        id: Some(i),
        source_id: 1 + i / 4,
        kind: "pool-member".into(),
        source: "pool.large.test".into(),
        address: format!("10.{}.{}.{}:123", i >> 16, (i >> 8) & 0xFF, i & 0xFF),
        state: "reachable".into(),
        last_error: None,
        stratum: Some(2),
        refid: Some("192.0.2.1".into()),
        refid_hex: None,
        reach: 255,
        poll: 1024.0,
        when: Some(100.0),
        offset: Some(1.5e-4),
        delay: Some(2.5e-2),
        dispersion: Some(1e-3),
        jitter: Some(5e-5),
        last_kod: None,
        demobilized: None,
        verdict: Some("survivor".into()),
        tally: "+".into(),
        drops: vec![],
    }
}

#[test]
fn peers_json_with_ten_thousand_associations() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ctl.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let peers: Vec<PeerInfo> = (0..10_000).map(peer).collect();
    let frames = encode_reply_frames(Reply::Peers { peers }).unwrap();
    assert!(frames.len() > 1, "the reply should need several frames");
    let server = std::thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        let mut header = [0u8; FRAME_HEADER_LEN];
        stream.read_exact(&mut header).unwrap();
        let mut body = vec![0u8; frame_len(header).unwrap()];
        stream.read_exact(&mut body).unwrap();
        let request: Request = decode_payload(&body).unwrap();
        assert_eq!(request.command, rntp_control::Command::Peers);
        for f in &frames {
            stream.write_all(f).unwrap();
        }
    });
    let out = Command::new(env!("CARGO_BIN_EXE_rntpctl"))
        .arg("-s")
        .arg(&path)
        .args(["peers", "--json"])
        .output()
        .unwrap();
    server.join().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let rows = json.as_array().expect("an array");
    assert_eq!(rows.len(), 10_000);
    assert_eq!(rows[9_999]["id"], 9_999);
}
