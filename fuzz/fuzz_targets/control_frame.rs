//! Fuzzes control-socket decoding as the daemon does it: a frame header then a JSON payload.
//! Must never panic, and a decoded request must re-encode and decode to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rntp_control::{decode_payload, encode_frame, frame_len, Request, Response, FRAME_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    if data.len() >= FRAME_HEADER_LEN {
        let mut header = [0u8; FRAME_HEADER_LEN];
        header.copy_from_slice(&data[..FRAME_HEADER_LEN]);
        let _ = frame_len(header);
    }
    if let Ok(req) = decode_payload::<Request>(data) {
        let frame = encode_frame(&req).expect("a decoded request re-encodes");
        let again: Request = decode_payload(&frame[FRAME_HEADER_LEN..]).expect("and decodes");
        assert_eq!(again, req);
    }
    let _ = decode_payload::<Response>(data);
});
