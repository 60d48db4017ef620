//! Arbitrary bytes through huddle-msrp's message/cpim parser (RFC 3862): it never panics,
//! and whatever it accepts encodes to bytes that parse back to the same message, which
//! encode to the same bytes again.
#![no_main]

use huddle_msrp::cpim::CpimMessage;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = CpimMessage::parse(data) {
        let encoded = msg.to_bytes();
        let again = CpimMessage::parse(&encoded).expect("encoded message must parse");
        assert_eq!(again, msg);
        assert_eq!(again.to_bytes(), encoded);
    }
});
