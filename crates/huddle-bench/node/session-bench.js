// The jingle.js side of `cargo xtask bench session`: the same inbound action mix as
// crates/huddle-bench/benches/session.rs, through jingle@3.0.3's SessionManager with a
// jingle-session@2.0.3 subclass that acknowledges everything synchronously.
// Run: NODE_MODULES_DIR=<dir>/node_modules node session-bench.js [sessions] [min_ms] [json|xml]
// (npm install jingle@3.0.3 jingle-session@2.0.3 ltx@3.1.2 in <dir>). Prints `actions_per_sec N`.
//
// Modes: `json` (default) hands jingle.js the parsed JSON objects it works on (parse
// excluded). `xml` starts from the same IQs as XML text, parses each with ltx (xmpp.js's
// XML library), maps the element to jingle.js's JSON shape for this mix, and serializes
// every IQ jingle.js sends back to XML text with ltx: XML in, XML out, like huddle's
// `handle_xml` + `poll_transmit_xml`. ltx with a hand-written mapping is lighter than stanza's
// generic JXT translation, so this favours node.
'use strict';
const path = require('path');
const util = require('util');
const NM = process.env.NODE_MODULES_DIR || path.join(process.cwd(), 'node_modules');
const BaseSession = require(path.join(NM, 'jingle-session'));
const SessionManager = require(path.join(NM, 'jingle'));

function BenchSession(opts) { BaseSession.call(this, opts); }
util.inherits(BenchSession, BaseSession);
BenchSession.prototype.onSessionInitiate = function (changes, cb) { this.state = 'pending'; cb(); };
BenchSession.prototype.onTransportInfo = function (changes, cb) { cb(); };
BenchSession.prototype.onContentModify = function (changes, cb) { cb(); };

const SESSIONS = parseInt(process.argv[2] || '2000', 10);
const MIN_MS = parseInt(process.argv[3] || '2000', 10);
const XML = process.argv[4] === 'xml';
// `json-chunked`: the requests are built CHUNK sessions at a time just before they are
// processed (outside the clock), as huddle's "built just before" row does.
const CHUNK = process.argv[4] === 'json-chunked' ? 16 : 0;
const ltx = XML ? require(path.join(NM, 'ltx')) : null;
const PEER = 'peer@example.com/res';
const ME = 'me@example.com/res';
const content = { creator: 'initiator', name: 'c1', application: { applicationType: 'test' }, transport: { transportType: 'test' } };

// The mix per session: session-initiate, 2 × transport-info, session-info (ping),
// content-modify, session-terminate = 6 actions, every one acknowledged.
function requests(round, from = 0, to = SESSIONS) {
  const out = [];
  for (let i = from; i < to; i++) {
    const sid = 'r' + round + 's' + i;
    const iq = (action, extra, n) => ({ to: ME, from: PEER, id: sid + '-' + n, type: 'set', jingle: Object.assign({ sid: sid, action: action }, extra) });
    out.push([
      iq('session-initiate', { contents: [content] }, 0),
      iq('transport-info', { contents: [content] }, 1),
      iq('transport-info', { contents: [content] }, 2),
      iq('session-info', {}, 3),
      iq('content-modify', { contents: [{ creator: 'initiator', name: 'c1', senders: 'initiator' }] }, 4),
      iq('session-terminate', { reason: { condition: 'success' } }, 5),
    ]);
  }
  return out;
}

// ---- XML mode: the IQs as text, and ltx mappings both ways.

function contentToXml(c) {
  const attrs = { creator: c.creator, name: c.name };
  if (c.senders && c.senders !== 'both') attrs.senders = c.senders;
  const el = new ltx.Element('content', attrs);
  if (c.application) el.c('description', { xmlns: c.application.applicationType }).up();
  if (c.transport) el.c('transport', { xmlns: c.transport.transportType }).up();
  return el;
}

function iqToXml(iq) {
  const el = new ltx.Element('iq', { xmlns: 'jabber:client', type: iq.type, id: iq.id, from: iq.from, to: iq.to });
  if (iq.jingle) {
    const j = el.c('jingle', { xmlns: 'urn:xmpp:jingle:1', action: iq.jingle.action, sid: iq.jingle.sid });
    for (const c of iq.jingle.contents || []) j.cnode(contentToXml(c)).up();
    if (iq.jingle.reason) j.c('reason').c(iq.jingle.reason.condition).up().up();
  }
  if (iq.error) {
    const e = el.c('error', { type: iq.error.type });
    e.c(iq.error.condition, { xmlns: 'urn:ietf:params:xml:ns:xmpp-stanzas' }).up();
    if (iq.error.jingleCondition) e.c(iq.error.jingleCondition, { xmlns: 'urn:xmpp:jingle:errors:1' }).up();
  }
  return el.toString();
}

function contentFromXml(el) {
  const c = { creator: el.attrs.creator, name: el.attrs.name, senders: el.attrs.senders || 'both' };
  const d = el.getChild('description');
  if (d) c.application = { applicationType: d.attrs.xmlns };
  const t = el.getChild('transport');
  if (t) c.transport = { transportType: t.attrs.xmlns };
  return c;
}

function iqFromXml(text) {
  const el = ltx.parse(text);
  const iq = { to: el.attrs.to, from: el.attrs.from, id: el.attrs.id, type: el.attrs.type };
  const j = el.getChild('jingle', 'urn:xmpp:jingle:1');
  if (j) {
    iq.jingle = { sid: j.attrs.sid, action: j.attrs.action };
    const contents = j.getChildren('content');
    if (contents.length) iq.jingle.contents = contents.map(contentFromXml);
    const r = j.getChild('reason');
    if (r && r.children.length) iq.jingle.reason = { condition: r.children[0].name };
  }
  return iq;
}

async function main() {
  const m = new SessionManager({ jid: ME, prepareSession: (opts) => new BenchSession(opts) });
  let replies = 0;
  let bytes = 0;
  m.on('send', (d) => {
    if (XML) bytes += iqToXml(d).length;
    if (d.type === 'result' || d.type === 'error') replies++;
  });
  let actions = 0, spent = 0, round = 0;
  // One warm-up round, not counted.
  for (let measured = false; CHUNK; measured = true) {
    const r = round++;
    for (let from = 0; from < SESSIONS; from += CHUNK) {
      const chunk = requests(r, from, Math.min(from + CHUNK, SESSIONS));
      const n = chunk.length * 6;
      const want = replies + n;
      const t0 = process.hrtime.bigint();
      for (const s of chunk) for (const iq of s) m.process(iq);
      while (replies < want) { await new Promise(setImmediate); }
      const t1 = process.hrtime.bigint();
      if (measured) { spent += Number(t1 - t0) / 1e6; actions += n; }
    }
    if (spent >= MIN_MS) break;
  }
  for (let measured = false; !CHUNK; measured = true) {
    let batch = requests(round++);
    if (XML) batch = batch.map((s) => s.map(iqToXml));
    const want = replies + SESSIONS * 6;
    const t0 = process.hrtime.bigint();
    if (XML) {
      for (const s of batch) for (const text of s) m.process(iqFromXml(text));
    } else {
      for (const s of batch) for (const iq of s) m.process(iq);
    }
    // jingle-session's queue runs on later ticks: wait for every reply.
    while (replies < want) { await new Promise(setImmediate); }
    const t1 = process.hrtime.bigint();
    if (measured) { spent += Number(t1 - t0) / 1e6; actions += SESSIONS * 6; }
    if (spent >= MIN_MS) break;
  }
  const expected = round * SESSIONS * 6;
  if (replies !== expected) { console.error('replies ' + replies + ' != ' + expected); process.exit(1); }
  if (XML && bytes === 0) { console.error('no XML written'); process.exit(1); }
  console.log('actions_per_sec ' + Math.round(actions / (spent / 1000)));
}
main();
