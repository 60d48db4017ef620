//! Interop with a real RFC 4976 relay: Kamailio 5.6 started with
//! `shared/conformance/kamailio/msrp-relay.cfg` (installed with apt-get when missing and
//! running as root). Two huddle endpoints authenticate, bind through it and exchange
//! SEND, 200 and REPORT, including a message in several ≤ 4 KiB chunks; wrong
//! credentials, 423 bounds, a refresh and an unknown session are checked too.
//!
//! This test never skips: when Kamailio cannot be installed or started it fails and
//! says why.

#[path = "support/interop.rs"]
mod interop;
#[path = "support/kamailio.rs"]
mod kamailio;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_huddle_endpoints_through_kamailio() {
    let relay = tokio::task::spawn_blocking(kamailio::Kamailio::start)
        .await
        .expect("the start task does not panic");
    let relay = match relay {
        Ok(k) => k,
        Err(why) => panic!(
            "the Kamailio interop test cannot run: {why}\n\
             (install the Debian package `kamailio`, or run as root so the test installs it)"
        ),
    };
    let cases = interop::run(&relay.relay_uri()).await;
    assert!(
        cases.len() >= 10,
        "not every case ran: {cases:?}\n--- kamailio log ---\n{}",
        relay.log()
    );
    let failed: Vec<String> = cases
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    assert!(
        failed.is_empty(),
        "failed against Kamailio:\n{}\n--- kamailio log ---\n{}",
        failed.join("\n"),
        relay.log()
    );
}
