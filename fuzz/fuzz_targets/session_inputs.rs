//! Arbitrary sequences of inbound Jingle IQs, replies, commands and clock moves against a
//! `huddle_session::jingle::SessionManager`: never a panic, and every inbound IQ-set
//! answered exactly once (huddle_session::harness::session_inputs checks it).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Err(broken) = huddle_session::harness::session_inputs(data) {
        panic!("invariant broken: {broken}");
    }
});
