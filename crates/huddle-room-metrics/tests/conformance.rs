//! The recorded behaviour of the real Loop client, loop-server and Hawk (shared material).

mod common;

use common::{Backend, Backing, loop_dir};
use huddle_room_metrics::conformance::{self, CaseResult};
use huddle_room_metrics::tracker::Variant;

fn assert_all_pass(what: &str, cases: &[CaseResult], at_least: usize) {
    let failed: Vec<_> = cases.iter().filter(|c| c.outcome.is_err()).collect();
    assert!(failed.is_empty(), "{what}: {failed:#?}");
    assert!(
        cases.len() >= at_least,
        "{what}: only {} cases",
        cases.len()
    );
}

#[test]
fn tracker_matches_the_shipped_client_event_for_event() {
    let cases = conformance::client_sequences(
        &loop_dir().join("client_state_sequences_2015.json"),
        Variant::Shipped,
    )
    .expect("material");
    assert_all_pass("shipped", &cases, 30);
}

#[test]
fn tracker_matches_the_cleanup_client_event_for_event() {
    let cases = conformance::client_sequences(
        &loop_dir().join("client_state_sequences_2015_with_cleanup.json"),
        Variant::WithCleanup,
    )
    .expect("material");
    assert_all_pass("with cleanup", &cases, 30);
}

#[test]
fn the_variants_differ_exactly_where_the_recordings_do() {
    // The shipped tracker against the cleanup recording fails on the local-destroy step only.
    let cases = conformance::client_sequences(
        &loop_dir().join("client_state_sequences_2015_with_cleanup.json"),
        Variant::Shipped,
    )
    .expect("material");
    let failed: Vec<_> = cases.iter().filter(|c| c.outcome.is_err()).collect();
    assert_eq!(failed.len(), 1, "{failed:#?}");
    assert!(failed[0].name.contains("Session.connectionDestroyed"));
}

#[test]
fn hawk_vectors_both_directions() {
    let cases = conformance::hawk_vectors(&loop_dir().join("hawk_vectors.json")).expect("material");
    assert_all_pass("hawk", &cases, 20);
}

async fn status_contract(backend: Backend) {
    let backing = Backing::new(backend);
    let cases = conformance::status_contract(
        &loop_dir().join("status_contract_from_tests.json"),
        backing.store().await,
    )
    .await
    .expect("material");
    assert_all_pass("status contract", &cases, 18);
}

#[tokio::test]
async fn status_contract_embedded() {
    status_contract(Backend::Embedded).await;
}

#[tokio::test]
async fn status_contract_redis() {
    status_contract(Backend::Redis).await;
}
