//! Fuzzes `PacketRepr::parse`: arbitrary bytes must never panic, and whatever parses must emit
//! back to the same bytes and re-parse to an equal representation (the parser and the emitter
//! agree on every length rule, including RFC 7822's MAC-versus-extension disambiguation).
#![no_main]

use libfuzzer_sys::fuzz_target;
use rntp_proto::wire::{NtpHeader, Packet, PacketRepr};

fuzz_target!(|data: &[u8]| {
    // The unchecked view must not panic on any input either.
    let view = Packet::new_unchecked(data);
    let _ = NtpHeader::from_packet(&view);

    let Ok(repr) = PacketRepr::parse(data) else {
        return;
    };
    assert_eq!(repr.buffer_len(), data.len(), "parse left bytes unaccounted for");
    let mut buf = vec![0u8; repr.buffer_len()];
    let len = repr.emit(&mut buf).expect("a parsed packet must be emittable");
    assert_eq!(&buf[..len], data, "emit is not the inverse of parse");
    let again = PacketRepr::parse(&buf[..len]).expect("an emitted packet must parse");
    assert_eq!(again, repr);
    assert_eq!(repr.header.to_bytes()[..], data[..NtpHeader::LEN]);
});
