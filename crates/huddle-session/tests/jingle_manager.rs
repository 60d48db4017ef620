//! The Jingle session manager driven directly (no network): protocol checks, the
//! per-session queue, replies, tie-breaks, commands and timeouts.

mod support;

use std::time::{Duration, Instant};

use huddle_jingle::{
    Action, ErrorType, IqType, Jingle, JingleErrorCondition, Reason, ReasonCondition,
    StanzaErrorCondition,
};
use huddle_session::jingle::{
    ConnectionState, Event, RequestFailure, SessionError, SessionState, TieBreakRule, Verdict,
};
use support::*;

const ME: &str = "me@example.com/res";
const PEER: &str = "peer@example.com/res";

fn err_of(iq: &huddle_jingle::Iq) -> (StanzaErrorCondition, Option<JingleErrorCondition>) {
    assert_eq!(iq.kind, IqType::Error, "{iq:#?}");
    let e = iq.error.as_ref().expect("error");
    (e.condition, e.jingle_condition)
}

#[test]
fn incoming_initiate_is_acknowledged_then_announced_and_accept_goes_active() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.handle_iq(request(PEER, ME, "i1", initiate("s1", TEST_NS)), now);
    let out = sent(&mut m, now);
    assert_eq!(out.len(), 1);
    assert_eq!(reply(&out, "i1").kind, IqType::Result);
    let ev = events(&mut m);
    assert!(matches!(&ev[0], Event::Created { sid, initiator: false, .. } if sid == "s1"));
    assert!(ev.iter().any(
        |e| matches!(e, Event::Incoming { description_types, .. } if **description_types == ["test"])
    ));
    assert_eq!(
        m.session("s1").map(|s| s.state()),
        Some(SessionState::Pending)
    );

    m.accept("s1").expect("accept");
    let out = sent(&mut m, now);
    assert_eq!(out.len(), 1);
    let j = out[0].jingle.as_ref().expect("jingle");
    assert_eq!(j.action, Action::SessionAccept);
    assert_eq!(j.responder.as_ref().map(|r| r.as_str()), Some(ME));
    let s = m.session("s1").expect("live");
    assert_eq!(s.state(), SessionState::Active);
    assert_eq!(s.pending_action(), Some(Action::SessionAccept));
    // The initiator's ack clears the pending action (jingle.js never clears it).
    m.handle_iq(answer(&out[0], None), now);
    assert_eq!(m.session("s1").expect("live").pending_action(), None);
    assert!(events(&mut m).iter().any(|e| matches!(
        e,
        Event::RequestAcknowledged {
            action: Action::SessionAccept,
            ..
        }
    )));
}

#[test]
fn unknown_sids_and_wrong_senders_get_unknown_session() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.handle_iq(request(PEER, ME, "i1", initiate("s1", TEST_NS)), now);
    m.handle_iq(
        request(PEER, ME, "u1", Jingle::new(Action::SessionInfo, "nope")),
        now,
    );
    m.handle_iq(
        request(
            "mallory@example.com/x",
            ME,
            "h1",
            Jingle::new(Action::SessionTerminate, "s1"),
        ),
        now,
    );
    m.handle_iq(
        request(
            "peer@example.com",
            ME,
            "b1",
            Jingle::new(Action::SessionInfo, "s1"),
        ),
        now,
    );
    let out = sent(&mut m, now);
    for id in ["u1", "h1", "b1"] {
        assert_eq!(
            err_of(reply(&out, id)),
            (
                StanzaErrorCondition::ItemNotFound,
                Some(JingleErrorCondition::UnknownSession)
            ),
            "{id}"
        );
    }
    assert_eq!(
        m.session("s1").map(|s| s.state()),
        Some(SessionState::Pending)
    );
}

#[test]
fn out_of_order_accepts_and_initiates_are_refused() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("s1".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    let init = sent(&mut m, now);
    m.handle_iq(
        request(PEER, ME, "a1", Jingle::new(Action::SessionAccept, "s1")),
        now,
    );
    m.handle_iq(
        request(PEER, ME, "a2", Jingle::new(Action::SessionAccept, "s1")),
        now,
    );
    m.handle_iq(request(PEER, ME, "i2", initiate("s1", TEST_NS)), now);
    let out = sent(&mut m, now);
    assert_eq!(reply(&out, "a1").kind, IqType::Result);
    assert_eq!(
        err_of(reply(&out, "a2")),
        (
            StanzaErrorCondition::UnexpectedRequest,
            Some(JingleErrorCondition::OutOfOrder)
        )
    );
    // Our initiate was never answered, so a same-sid initiate is a tie-break, and we
    // (me@ < peer@) win it.
    assert_eq!(
        err_of(reply(&out, "i2")),
        (
            StanzaErrorCondition::Conflict,
            Some(JingleErrorCondition::TieBreak)
        )
    );
    m.handle_iq(answer(&init[0], None), now);
    m.handle_iq(request(PEER, ME, "i3", initiate("s1", TEST_NS)), now);
    let out = sent(&mut m, now);
    assert_eq!(
        err_of(reply(&out, "i3")),
        (
            StanzaErrorCondition::UnexpectedRequest,
            Some(JingleErrorCondition::OutOfOrder)
        )
    );
    assert_eq!(
        m.session("s1").map(|s| s.state()),
        Some(SessionState::Active)
    );
}

#[test]
fn malformed_initiates_and_unknown_actions_get_bad_request() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.handle_iq(
        request(PEER, ME, "e1", Jingle::new(Action::SessionInitiate, "s1")),
        now,
    );
    let mut j = initiate("s2", TEST_NS);
    j.contents[0].disposition = "early-session".into();
    m.handle_iq(request(PEER, ME, "e2", j), now);
    let xml = format!(
        "<iq type='set' id='e3' from='{PEER}' to='{ME}'><jingle xmlns='urn:xmpp:jingle:1' action='source-add' sid='s3'/></iq>"
    );
    assert!(m.handle_xml(xml.as_bytes(), now).is_err());
    let out = sent(&mut m, now);
    for id in ["e1", "e2", "e3"] {
        assert_eq!(
            err_of(reply(&out, id)).0,
            StanzaErrorCondition::BadRequest,
            "{id}"
        );
    }
    assert!(m.is_empty());
}

#[test]
fn base_sessions_refuse_content_add_and_transport_replace_and_unknown_info() {
    let now = Instant::now();
    let mut m = manager(ME, true, &[]);
    m.handle_iq(request(PEER, ME, "i1", initiate("s1", TEST_NS)), now);
    let mut add = Jingle::new(Action::ContentAdd, "s1");
    add.contents = vec![content("video")];
    m.handle_iq(request(PEER, ME, "c1", add), now);
    m.handle_iq(
        request(PEER, ME, "t1", Jingle::new(Action::TransportReplace, "s1")),
        now,
    );
    m.handle_iq(
        request(PEER, ME, "p1", Jingle::new(Action::SessionInfo, "s1")),
        now,
    );
    let mut ring = Jingle::new(Action::SessionInfo, "s1");
    ring.info = Some(Box::new(huddle_jingle::SessionInfo::Rtp(
        huddle_jingle::rtp::RtpInfo::Ringing,
    )));
    m.handle_iq(request(PEER, ME, "r1", ring), now);
    m.handle_iq(
        request(PEER, ME, "ti", Jingle::new(Action::TransportInfo, "s1")),
        now,
    );
    let out = sent(&mut m, now);
    assert_eq!(reply(&out, "c1").kind, IqType::Result);
    assert_eq!(reply(&out, "t1").kind, IqType::Result);
    assert_eq!(
        reply(&out, "p1").kind,
        IqType::Result,
        "an empty session-info is a ping"
    );
    for id in ["r1", "ti"] {
        let (c, j) = err_of(reply(&out, id));
        assert_eq!(
            (c, j),
            (
                StanzaErrorCondition::FeatureNotImplemented,
                Some(JingleErrorCondition::UnsupportedInfo)
            )
        );
        assert_eq!(
            reply(&out, id).error.as_ref().map(|e| e.kind),
            Some(ErrorType::Modify)
        );
    }
    let sets: Vec<_> = out.iter().filter_map(|i| i.jingle.as_ref()).collect();
    assert_eq!(sets[0].action, Action::ContentReject);
    assert_eq!(sets[0].contents[0].name, "c1");
    assert_eq!(
        sets[0].reason.as_ref().map(|r| r.condition),
        Some(ReasonCondition::FailedApplication)
    );
    assert_eq!(sets[1].action, Action::TransportReject);
    // The base session cannot accept: it terminates with unsupported-applications.
    m.accept("s1").expect("accept");
    let out = sent(&mut m, now);
    let t = out[0].jingle.as_ref().expect("terminate");
    assert_eq!(t.action, Action::SessionTerminate);
    assert_eq!(
        t.reason.as_ref().map(|r| r.condition),
        Some(ReasonCondition::UnsupportedApplications)
    );
    assert!(m.is_empty());
}

#[test]
fn the_queue_runs_in_order_and_a_deferred_action_holds_later_ones() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[Action::TransportInfo]);
    m.handle_iq(request(PEER, ME, "q0", initiate("s1", TEST_NS)), now);
    m.handle_iq(
        request(PEER, ME, "q1", Jingle::new(Action::TransportInfo, "s1")),
        now,
    );
    m.handle_iq(
        request(PEER, ME, "q2", Jingle::new(Action::SessionInfo, "s1")),
        now,
    );
    let out = sent(&mut m, now);
    assert_eq!(
        out.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["q0"]
    );
    assert_eq!(m.queued("s1"), 2);
    assert_eq!(m.complete("s1", Verdict::bad_request()), Ok(()));
    let out = sent(&mut m, now);
    assert_eq!(
        out.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["q1", "q2"]
    );
    assert_eq!(err_of(&out[0]).0, StanzaErrorCondition::BadRequest);
    assert_eq!(out[1].kind, IqType::Result);
    assert_eq!(
        m.complete("s1", Verdict::Ack),
        Err(SessionError::NothingDeferred("s1".into()))
    );
}

#[test]
fn every_request_queued_behind_a_terminate_is_answered() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[Action::TransportInfo]);
    m.handle_iq(request(PEER, ME, "q0", initiate("s1", TEST_NS)), now);
    m.handle_iq(
        request(PEER, ME, "q1", Jingle::new(Action::TransportInfo, "s1")),
        now,
    );
    let mut term = Jingle::new(Action::SessionTerminate, "s1");
    term.reason = Some(Box::new(Reason::new(ReasonCondition::Success)));
    m.handle_iq(request(PEER, ME, "q2", term), now);
    m.handle_iq(
        request(PEER, ME, "q3", Jingle::new(Action::SessionInfo, "s1")),
        now,
    );
    m.complete("s1", Verdict::Ack).expect("complete");
    let out = sent(&mut m, now);
    assert_eq!(
        out.iter().map(|i| i.id.as_str()).collect::<Vec<_>>(),
        ["q0", "q1", "q2", "q3"]
    );
    assert_eq!(
        err_of(&out[3]),
        (
            StanzaErrorCondition::ItemNotFound,
            Some(JingleErrorCondition::UnknownSession)
        )
    );
    let ev = events(&mut m);
    assert!(ev.iter().any(|e| matches!(e, Event::Terminated { by_peer: true, reason: Some(r), .. } if r.condition == ReasonCondition::Success)));
}

#[test]
fn a_local_end_answers_the_deferred_and_queued_requests() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[Action::TransportInfo]);
    m.handle_iq(request(PEER, ME, "q0", initiate("s1", TEST_NS)), now);
    m.handle_iq(
        request(PEER, ME, "q1", Jingle::new(Action::TransportInfo, "s1")),
        now,
    );
    m.handle_iq(
        request(PEER, ME, "q2", Jingle::new(Action::SessionInfo, "s1")),
        now,
    );
    m.end("s1", Some(Reason::new(ReasonCondition::Gone)), false)
        .expect("end");
    let out = sent(&mut m, now);
    assert_eq!(reply(&out, "q1").kind, IqType::Error);
    assert_eq!(reply(&out, "q2").kind, IqType::Error);
    assert_eq!(
        m.end("s1", None, false),
        Err(SessionError::UnknownSession("s1".into()))
    );
    assert_eq!(
        m.complete("s1", Verdict::Ack),
        Err(SessionError::UnknownSession("s1".into()))
    );
}

#[test]
fn end_forms_put_the_reason_on_the_wire() {
    let now = Instant::now();
    let mut alt = Reason::new(ReasonCondition::AlternativeSession);
    alt.alternative_session = Some("sid-other".into());
    let mut text = Reason::new(ReasonCondition::Gone);
    text.text = Some("Bye now".into());
    for (reason, want) in [
        (None, Reason::new(ReasonCondition::Success)),
        (Some(alt.clone()), alt),
        (Some(text.clone()), text),
    ] {
        let mut m = manager(ME, false, &[]);
        m.handle_iq(request(PEER, ME, "i", initiate("s1", TEST_NS)), now);
        sent(&mut m, now);
        m.end("s1", reason, false).expect("end");
        let out = sent(&mut m, now);
        assert_eq!(
            out[0]
                .jingle
                .as_ref()
                .and_then(|j| j.reason.as_deref().cloned()),
            Some(want)
        );
    }
    let mut m = manager(ME, false, &[]);
    m.handle_iq(request(PEER, ME, "i", initiate("s1", TEST_NS)), now);
    sent(&mut m, now);
    m.end("s1", Some(Reason::new(ReasonCondition::Timeout)), true)
        .expect("silent end");
    assert!(sent(&mut m, now).is_empty());
    assert_eq!(
        m.decline("s1"),
        Err(SessionError::UnknownSession("s1".into()))
    );
}

#[test]
fn end_peer_sessions_and_end_all() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.handle_iq(request(PEER, ME, "1", initiate("a", TEST_NS)), now);
    m.handle_iq(request(PEER, ME, "2", initiate("b", TEST_NS)), now);
    m.handle_iq(
        request("other@example.com/r", ME, "3", initiate("c", TEST_NS)),
        now,
    );
    sent(&mut m, now);
    assert_eq!(m.end_peer_sessions(&jid(PEER), None, false), 2);
    let out = sent(&mut m, now);
    assert_eq!(out.len(), 2);
    assert!(out.iter().all(|i| {
        i.jingle
            .as_ref()
            .and_then(|j| j.reason.as_ref())
            .map(|r| r.condition)
            == Some(ReasonCondition::Gone)
    }));
    assert_eq!(m.end_all(None, true), 1);
    assert!(sent(&mut m, now).is_empty());
    assert!(m.is_empty());
}

#[test]
fn crossed_initiates_lower_sid_wins_per_xep_0166() {
    let now = Instant::now();
    // We sent sid-bbb; the peer's sid-aaa is lower: we acknowledge it, and when the
    // peer refuses ours with tie-break our session ends as an alternative of theirs.
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("sid-bbb".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    let ours = sent(&mut m, now);
    m.handle_iq(request(PEER, ME, "x", initiate("sid-aaa", TEST_NS)), now);
    let out = sent(&mut m, now);
    assert_eq!(reply(&out, "x").kind, IqType::Result);
    m.handle_iq(
        answer(
            &ours[0],
            Some(huddle_jingle::StanzaError::jingle(
                JingleErrorCondition::TieBreak,
            )),
        ),
        now,
    );
    let ev = events(&mut m);
    let alt = ev.iter().find_map(|e| match e {
        Event::Terminated {
            sid,
            reason: Some(r),
            ..
        } if sid == "sid-bbb" => Some(r.clone()),
        _ => None,
    });
    assert_eq!(
        alt.map(|r| (r.condition, r.alternative_session)),
        Some((ReasonCondition::AlternativeSession, Some("sid-aaa".into())))
    );
    assert_eq!(m.session("sid-aaa").map(|s| s.is_initiator()), Some(false));

    // We sent sid-aaa; the peer's sid-bbb is higher: conflict + tie-break.
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("sid-aaa".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    sent(&mut m, now);
    m.handle_iq(request(PEER, ME, "y", initiate("sid-bbb", TEST_NS)), now);
    let out = sent(&mut m, now);
    assert_eq!(
        err_of(reply(&out, "y")),
        (
            StanzaErrorCondition::Conflict,
            Some(JingleErrorCondition::TieBreak)
        )
    );
    assert!(m.session("sid-bbb").is_none());

    // Different applications do not cross.
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("sid-aaa".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    sent(&mut m, now);
    m.handle_iq(request(PEER, ME, "z", initiate("sid-bbb", "other")), now);
    assert_eq!(reply(&sent(&mut m, now), "z").kind, IqType::Result);
    assert_eq!(m.len(), 2);
}

#[test]
fn the_compat_rule_inverts_the_crossed_initiate_tie_break() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    let mut c = m.config().clone();
    c.tie_break = TieBreakRule::InvertedCompat;
    let mut m2 = huddle_session::jingle::SessionManager::new(c);
    m2.register(TEST_NS, |_| Box::new(TestSession::default()));
    for (mgr, want_conflict) in [(&mut m, false), (&mut m2, true)] {
        mgr.start_with_sid("sid-bbb".into(), jid(PEER), vec![content(TEST_NS)])
            .expect("start");
        sent(mgr, now);
        mgr.handle_iq(request(PEER, ME, "x", initiate("sid-aaa", TEST_NS)), now);
        let out = sent(mgr, now);
        assert_eq!(reply(&out, "x").kind == IqType::Error, want_conflict);
    }
}

#[test]
fn equal_sids_resolve_by_jid_and_never_hang() {
    let now = Instant::now();
    // me@ < peer@: ours wins.
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("same".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    sent(&mut m, now);
    m.handle_iq(request(PEER, ME, "x", initiate("same", TEST_NS)), now);
    assert_eq!(
        err_of(reply(&sent(&mut m, now), "x")).1,
        Some(JingleErrorCondition::TieBreak)
    );
    assert!(m.session("same").expect("ours").is_initiator());
    // zed@ > peer@: theirs wins, ours is replaced by the incoming session.
    let mut m = manager("zed@example.com/z", false, &[]);
    m.start_with_sid("same".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    sent(&mut m, now);
    m.handle_iq(
        request(PEER, "zed@example.com/z", "x", initiate("same", TEST_NS)),
        now,
    );
    assert_eq!(reply(&sent(&mut m, now), "x").kind, IqType::Result);
    let s = m.session("same").expect("theirs");
    assert!(!s.is_initiator());
    assert_eq!(s.state(), SessionState::Pending);
    assert!(events(&mut m).iter().any(|e| matches!(
        e,
        Event::RequestFailed {
            failure: RequestFailure::SessionEnded,
            action: Action::SessionInitiate,
            ..
        }
    )));
}

#[test]
fn crossed_actions_in_a_session_go_to_the_initiator() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("s".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    let init = sent(&mut m, now);
    m.handle_iq(answer(&init[0], None), now);
    m.handle_iq(
        request(PEER, ME, "acc", Jingle::new(Action::SessionAccept, "s")),
        now,
    );
    sent(&mut m, now);
    m.send_action("s", Jingle::new(Action::ContentModify, "s"))
        .expect("send");
    sent(&mut m, now);
    m.handle_iq(
        request(PEER, ME, "cm", Jingle::new(Action::ContentModify, "s")),
        now,
    );
    assert_eq!(
        err_of(reply(&sent(&mut m, now), "cm")),
        (
            StanzaErrorCondition::Conflict,
            Some(JingleErrorCondition::TieBreak)
        )
    );

    // As responder we yield.
    let mut r = manager(ME, false, &[]);
    r.handle_iq(request(PEER, ME, "i", initiate("s", TEST_NS)), now);
    r.accept("s").expect("accept");
    sent(&mut r, now);
    let mine = r
        .send_action("s", Jingle::new(Action::ContentModify, "s"))
        .expect("send");
    let out = sent(&mut r, now);
    r.handle_iq(
        request(PEER, ME, "cm", Jingle::new(Action::ContentModify, "s")),
        now,
    );
    assert_eq!(reply(&sent(&mut r, now), "cm").kind, IqType::Result);
    let req = out.iter().find(|i| i.id == mine).expect("ours");
    r.handle_iq(
        answer(
            req,
            Some(huddle_jingle::StanzaError::jingle(
                JingleErrorCondition::TieBreak,
            )),
        ),
        now,
    );
    assert_eq!(r.session("s").expect("live").pending_action(), None);
    assert_eq!(r.session("s").expect("live").state(), SessionState::Active);
}

#[test]
fn an_unanswered_request_ends_the_session_with_timeout() {
    let t0 = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("s".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    assert!(
        m.poll_timeout().is_none(),
        "the timer starts when the IQ leaves"
    );
    sent(&mut m, t0);
    let deadline = m.poll_timeout().expect("armed");
    assert_eq!(deadline, t0 + huddle_session::jingle::DEFAULT_REPLY_TIMEOUT);
    m.handle_timeout(deadline - Duration::from_millis(1));
    assert!(m.session("s").is_some());
    m.handle_timeout(deadline);
    assert!(m.session("s").is_none());
    let out = sent(&mut m, deadline);
    assert_eq!(
        out[0]
            .jingle
            .as_ref()
            .and_then(|j| j.reason.as_ref())
            .map(|r| r.condition),
        Some(ReasonCondition::Timeout)
    );
    let ev = events(&mut m);
    assert!(ev.iter().any(|e| matches!(
        e,
        Event::RequestFailed {
            failure: RequestFailure::Timeout,
            ..
        }
    )));
    assert!(ev.iter().any(|e| matches!(e, Event::Terminated { reason: Some(r), by_peer: false, .. } if r.condition == ReasonCondition::Timeout)));
}

#[test]
fn an_error_reply_to_our_initiate_ends_the_session_and_late_replies_are_ignored() {
    let now = Instant::now();
    let mut m = manager(ME, false, &[]);
    m.start_with_sid("s".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    let init = sent(&mut m, now);
    m.handle_iq(
        answer(
            &init[0],
            Some(huddle_jingle::StanzaError::jingle(
                JingleErrorCondition::UnknownSession,
            )),
        ),
        now,
    );
    assert!(m.is_empty());
    assert!(
        sent(&mut m, now).is_empty(),
        "silent: the peer never had the session"
    );
    m.handle_iq(answer(&init[0], None), now);
    assert!(sent(&mut m, now).is_empty(), "replies are never answered");
}

#[test]
fn base_sessions_cannot_start_and_connection_state_is_reported() {
    let now = Instant::now();
    let mut m = manager(ME, true, &[]);
    let sid = m.start(jid(PEER), vec![content(TEST_NS)]).expect("start");
    assert!(sent(&mut m, now).is_empty());
    let ev = events(&mut m);
    assert!(
        matches!(ev.last(), Some(Event::Terminated { reason: Some(r), .. }) if r.condition == ReasonCondition::UnsupportedApplications)
    );
    assert_eq!(sid.len(), 36);

    let mut m = manager(ME, false, &[]);
    m.start_with_sid("s".into(), jid(PEER), vec![content(TEST_NS)])
        .expect("start");
    m.set_connection_state("s", ConnectionState::Connecting)
        .expect("set");
    m.set_connection_state("s", ConnectionState::Connecting)
        .expect("same");
    let changes: Vec<_> = events(&mut m)
        .into_iter()
        .filter(|e| matches!(e, Event::ConnectionStateChanged { .. }))
        .collect();
    assert_eq!(changes.len(), 1);
    assert_eq!(
        m.start_with_sid("s".into(), jid(PEER), vec![content(TEST_NS)]),
        Err(SessionError::SidInUse("s".into()))
    );
    assert_eq!(m.start(jid(PEER), vec![]), Err(SessionError::NoContents));
    assert_eq!(
        m.send_action("s", Jingle::new(Action::SessionAccept, "s")),
        Err(SessionError::ReservedAction(Action::SessionAccept))
    );
}

/// `handle_xml` (fast reader, reused JIDs) + `poll_transmit_xml` do what `handle_iq` +
/// `poll_transmit` + `to_xml` do: the same replies, byte for byte, and the same events,
/// for requests from two senders in turn (the last sender's JID is reused, the other's
/// is not) and for one the fast reader leaves to the tree reader (a CDATA section).
#[test]
fn xml_in_and_out_match_typed_in_and_out() {
    const OTHER: &str = "other@example.com/res";
    let now = Instant::now();
    let mut typed = manager(ME, false, &[]);
    let mut xml = manager(ME, false, &[]);
    let mut requests = Vec::new();
    for (i, from) in [PEER, OTHER, PEER, PEER, OTHER].into_iter().enumerate() {
        let sid = format!("s{i}");
        requests.push(request(from, ME, &format!("a{i}"), initiate(&sid, TEST_NS)));
        let mut end = Jingle::new(Action::SessionTerminate, sid.as_str());
        end.reason = Some(Box::new(Reason::new(ReasonCondition::Success)));
        requests.push(request(from, ME, &format!("b{i}"), end));
    }
    // A request for no session: an error reply (not an empty result) in both.
    requests.push(request(
        OTHER,
        ME,
        "c",
        Jingle::new(Action::TransportInfo, "nope"),
    ));
    let mut buf = String::from("<held/>");
    let mut written = Vec::new();
    for (n, iq) in requests.into_iter().enumerate() {
        let mut text = iq.to_xml();
        if n == 3 {
            // CDATA is left to the tree reader: the answer must not change.
            text = text.replacen("sid=\"s1\">", "sid=\"s1\"><![CDATA[ ]]>", 1);
            assert!(text.contains("CDATA"), "{text}");
        }
        xml.handle_xml(text.as_bytes(), now).expect("valid");
        typed.handle_iq(iq, now);
        while let Some(kind) = xml.poll_transmit_xml(now, &mut buf) {
            written.push((kind, buf.split_off("<held/>".len())));
        }
    }
    let expected: Vec<_> = sent(&mut typed, now)
        .iter()
        .map(|iq| (iq.kind, iq.to_xml()))
        .collect();
    assert_eq!(written.len(), 11);
    assert_eq!(written, expected);
    assert_eq!(written.last().map(|(k, _)| *k), Some(IqType::Error));
    assert_eq!(events(&mut xml), events(&mut typed));
}
