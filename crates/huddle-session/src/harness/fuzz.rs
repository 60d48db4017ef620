//! The body of the `session_inputs` fuzz target: arbitrary sequences of inbound IQs
//! (well-formed, malformed, replies), commands and clock moves against one
//! [`SessionManager`]. It must never panic, and every inbound IQ-set must get exactly
//! one reply.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use huddle_jingle::{
    Action, Content, Creator, Description, Element, Iq, IqType, Jid, Jingle, JingleErrorCondition,
    Reason, ReasonCondition, StanzaError, Transport,
};

use crate::jingle::{
    ApplicationHandler, Config, ConnectionState, Session, SessionManager, Verdict, base_verdict,
};

/// A handler that supports `test` and defers the actions in `defer`.
#[derive(Debug)]
struct FuzzHandler {
    defer: Vec<Action>,
}

impl ApplicationHandler for FuzzHandler {
    fn start(&mut self, _: &Session) -> Result<(), Reason> {
        Ok(())
    }
    fn accept(&mut self, _: &Session) -> Result<Vec<Content>, Reason> {
        Ok(vec![content("test")])
    }
    fn on_action(&mut self, session: &Session, jingle: &Jingle) -> Verdict {
        if self.defer.contains(&jingle.action) {
            return Verdict::Defer;
        }
        match jingle.action {
            Action::SessionInitiate | Action::SessionAccept | Action::TransportInfo => Verdict::Ack,
            _ => base_verdict(session, jingle),
        }
    }
}

fn content(app: &str) -> Content {
    let mut c = Content::new(Creator::Initiator, "c1");
    c.description = Some(Description::Raw(Element::new(
        "description",
        app.to_owned(),
    )));
    c.transport = Some(Transport::Raw(Element::new("transport", "t")));
    c
}

const ME: &str = "me@example.com/r";
const PEERS: [&str; 3] = [
    "peer@example.com/r",
    "zed@example.com/r",
    "peer@example.com",
];
const SIDS: [&str; 4] = ["s0", "s1", "same", "zz"];
const APPS: [&str; 3] = ["test", "other", "nobody"];

struct Input<'a> {
    data: &'a [u8],
}

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.data.split_first()?;
        self.data = rest;
        Some(*b)
    }
    fn pick<'t, T>(&mut self, from: &'t [T]) -> Option<&'t T> {
        let b = self.byte()?;
        from.get(usize::from(b) % from.len().max(1))
    }
}

/// Runs one fuzz input. `Err` describes a broken invariant (the target panics on it).
pub fn session_inputs(data: &[u8]) -> Result<(), String> {
    let mut input = Input { data };
    let mut config = Config::new(Jid::new(ME).map_err(|e| e.to_string())?);
    config.seed = Some(7);
    config.reply_timeout = Duration::from_secs(2);
    if input.byte().is_some_and(|b| b & 1 == 1) {
        config.tie_break = crate::jingle::TieBreakRule::InvertedCompat;
    }
    let mut m = SessionManager::new(config);
    let defer: Vec<Action> = match input.byte() {
        Some(b) => Action::ALL
            .iter()
            .copied()
            .filter(|a| (b as usize) % 7 == (*a as usize) % 7)
            .collect(),
        None => Vec::new(),
    };
    m.register("test", move |_| {
        Box::new(FuzzHandler {
            defer: defer.clone(),
        })
    });
    let mut now = Instant::now();
    // (sender, id) → replies seen; ids are unique per op.
    let mut answers: HashMap<(String, String), u32> = HashMap::new();
    let mut raw: HashMap<String, u32> = HashMap::new();
    let mut sent: Vec<Iq> = Vec::new();
    let mut n = 0u32;
    while let Some(op) = input.byte() {
        n += 1;
        let id = format!("f{n}");
        let peer = Jid::new(*input.pick(&PEERS).unwrap_or(&PEERS[0])).map_err(|e| e.to_string())?;
        let sid = *input.pick(&SIDS).unwrap_or(&SIDS[0]);
        match op % 12 {
            0 | 1 => {
                let mut j = Jingle::new(Action::SessionInitiate, sid);
                if input.byte().is_some_and(|b| b % 5 != 0) {
                    j.contents
                        .push(content(input.pick(&APPS).unwrap_or(&APPS[0])));
                }
                m.handle_iq(request(&peer, &id, j), now);
                answers.insert((peer.as_str().to_owned(), id), 0);
            }
            2 | 3 => {
                let action = *input.pick(Action::ALL).unwrap_or(&Action::SessionInfo);
                let mut j = Jingle::new(action, sid);
                if input.byte().is_some_and(|b| b & 1 == 1) {
                    j.contents.push(content("test"));
                }
                if action == Action::SessionTerminate {
                    j.reason = Some(Box::new(Reason::new(ReasonCondition::Success)));
                }
                m.handle_iq(request(&peer, &id, j), now);
                answers.insert((peer.as_str().to_owned(), id), 0);
            }
            4 => {
                let len = usize::from(input.byte().unwrap_or(0));
                let take = len.min(input.data.len());
                let (bytes, rest) = input.data.split_at(take);
                input.data = rest;
                let xml = format!(
                    "<iq type='set' id='{id}' from='{peer}' to='{ME}'>{}</iq>",
                    String::from_utf8_lossy(bytes)
                );
                let _ = m.handle_xml(xml.as_bytes(), now);
                raw.insert(id, 0);
            }
            5 => {
                if let Some(req) = input.pick(&sent).cloned() {
                    let error = match input.byte().unwrap_or(0) % 4 {
                        0 => None,
                        1 => Some(StanzaError::jingle(JingleErrorCondition::TieBreak)),
                        2 => Some(StanzaError::jingle(JingleErrorCondition::UnknownSession)),
                        _ => Some(StanzaError::jingle(JingleErrorCondition::OutOfOrder)),
                    };
                    let mut r = match error {
                        Some(e) => Iq::error_for(&req, e),
                        None => Iq::result_for(&req),
                    };
                    r.from = req.to.clone();
                    r.to = req.from.clone();
                    m.handle_iq(r, now);
                }
            }
            6 => {
                let app = *input.pick(&APPS).unwrap_or(&APPS[0]);
                let _ = m.start_with_sid(sid.to_owned(), peer, vec![content(app)]);
            }
            7 => {
                let _ = match input.byte().unwrap_or(0) % 5 {
                    0 => m.accept(sid),
                    1 => m.decline(sid),
                    2 => m.cancel(sid),
                    3 => m.end(sid, None, true),
                    _ => m.end(sid, Some(Reason::new(ReasonCondition::Gone)), false),
                };
            }
            8 => {
                let action = *input.pick(Action::ALL).unwrap_or(&Action::SessionInfo);
                let _ = m.send_action(sid, Jingle::new(action, sid));
            }
            9 => {
                let verdict = match input.byte().unwrap_or(0) % 3 {
                    0 => Verdict::Ack,
                    1 => Verdict::bad_request(),
                    _ => Verdict::Defer,
                };
                let _ = m.complete(sid, verdict);
            }
            10 => {
                now += Duration::from_millis(u64::from(input.byte().unwrap_or(0)) * 20);
                m.handle_timeout(now);
                let _ = m.set_connection_state(sid, ConnectionState::Connected);
            }
            _ => {
                if input.byte().is_some_and(|b| b & 1 == 1) {
                    m.end_peer_sessions(&peer, None, false);
                } else {
                    m.end_all(None, false);
                }
            }
        }
        drain(&mut m, now, &mut answers, &mut raw, &mut sent);
    }
    // Whatever is still queued or deferred is answered when the sessions end.
    m.end_all(None, true);
    drain(&mut m, now, &mut answers, &mut raw, &mut sent);
    if let Some(((from, id), k)) = answers.iter().find(|(_, k)| **k != 1) {
        return Err(format!("request {id} from {from} answered {k} times"));
    }
    if let Some((id, k)) = raw.iter().find(|(_, k)| **k > 1) {
        return Err(format!("raw request {id} answered {k} times"));
    }
    while m.poll_event().is_some() {}
    Ok(())
}

fn request(from: &Jid, id: &str, jingle: Jingle) -> Iq {
    let mut iq = Iq::set(id, jingle);
    iq.from = Some(from.clone());
    iq.to = Jid::new(ME).ok();
    iq
}

fn drain(
    m: &mut SessionManager,
    now: Instant,
    answers: &mut HashMap<(String, String), u32>,
    raw: &mut HashMap<String, u32>,
    sent: &mut Vec<Iq>,
) {
    while let Some(iq) = m.poll_transmit(now) {
        if matches!(iq.kind, IqType::Result | IqType::Error) {
            let to = iq
                .to
                .as_ref()
                .map(|j| j.as_str().to_owned())
                .unwrap_or_default();
            if let Some(k) = raw.get_mut(&iq.id) {
                *k += 1;
            } else if let Some(k) = answers.get_mut(&(to, iq.id)) {
                *k += 1;
            }
        } else if sent.len() < 64 {
            // A window of our requests for the peer to answer later.
            sent.push(iq);
        }
    }
    while m.poll_event().is_some() {}
}

#[cfg(test)]
mod tests {
    use super::session_inputs;

    #[test]
    fn fixed_and_pseudo_random_inputs_keep_the_invariants() {
        assert_eq!(session_inputs(&[]), Ok(()));
        assert_eq!(
            session_inputs(&[0, 0, 0, 0, 0, 1, 2, 3, 2, 0, 9, 7, 1, 11, 0]),
            Ok(())
        );
        let mut x = 0x1234_5678_u32;
        for len in [16usize, 64, 256, 1024] {
            for _ in 0..50 {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 17;
                        x ^= x << 5;
                        (x >> 24) as u8
                    })
                    .collect();
                assert_eq!(session_inputs(&data), Ok(()), "input {data:?}");
            }
        }
    }
}
