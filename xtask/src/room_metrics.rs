//! Conformance suites for huddle-room-metrics (Mozilla Loop rooms): the real Loop client's
//! status posts, loop-server's status contract (over loopback HTTP, embedded store; the
//! crate's tests run the same contract on Redis too), and the Hawk vectors.

use huddle_room_metrics::conformance::{self, CaseResult, ConformanceError};
use huddle_room_metrics::tracker::Variant;

use crate::conformance::{Ctx, SuiteResult};

fn fill(mut r: SuiteResult, cases: Result<Vec<CaseResult>, ConformanceError>) -> SuiteResult {
    match cases {
        Ok(cases) => {
            for c in cases {
                r.case(c.name, c.outcome);
            }
            r
        }
        Err(e) => r.could_not_run(e.to_string()),
    }
}

/// `loop-client-sequences`: both recordings, each with its variant of the tracker.
pub(crate) fn client_sequences_suite(ctx: &Ctx) -> SuiteResult {
    let dir = ctx.shared.join("conformance/loop");
    let mut r = SuiteResult::new("loop-client-sequences");
    for (file, variant) in [
        ("client_state_sequences_2015.json", Variant::Shipped),
        (
            "client_state_sequences_2015_with_cleanup.json",
            Variant::WithCleanup,
        ),
    ] {
        r = fill(r, conformance::client_sequences(&dir.join(file), variant));
        if r.not_run.is_some() {
            break;
        }
    }
    r
}

/// `loop-status-contract`: loop-server's status cases against a real server on loopback.
pub(crate) fn status_contract_suite(ctx: &Ctx) -> SuiteResult {
    let path = ctx
        .shared
        .join("conformance/loop/status_contract_from_tests.json");
    fill(
        SuiteResult::new("loop-status-contract"),
        conformance::status_contract_embedded(&path),
    )
}

/// `loop-hawk-vectors`: signing and verifying, both directions.
pub(crate) fn hawk_vectors_suite(ctx: &Ctx) -> SuiteResult {
    let path = ctx.shared.join("conformance/loop/hawk_vectors.json");
    fill(
        SuiteResult::new("loop-hawk-vectors"),
        conformance::hawk_vectors(&path),
    )
}
