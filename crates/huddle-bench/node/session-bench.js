// The jingle.js side of `cargo xtask bench session`: the same inbound action mix as
// crates/huddle-bench/benches/session.rs, through jingle@3.0.3's SessionManager with a
// jingle-session@2.0.3 subclass that acknowledges everything synchronously.
// Run: NODE_MODULES_DIR=<dir>/node_modules node session-bench.js [sessions] [min_ms]
// (npm install jingle@3.0.3 jingle-session@2.0.3 in <dir>). Prints `actions_per_sec N`.
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
const PEER = 'peer@example.com/res';
const ME = 'me@example.com/res';
const content = { creator: 'initiator', name: 'c1', application: { applicationType: 'test' }, transport: { transportType: 'test' } };

// The mix per session: session-initiate, 2 × transport-info, session-info (ping),
// content-modify, session-terminate = 6 actions, every one acknowledged.
function requests(round) {
  const out = [];
  for (let i = 0; i < SESSIONS; i++) {
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

async function main() {
  const m = new SessionManager({ jid: ME, prepareSession: (opts) => new BenchSession(opts) });
  let replies = 0;
  m.on('send', (d) => { if (d.type === 'result' || d.type === 'error') replies++; });
  let actions = 0, spent = 0, round = 0;
  // One warm-up round, not counted.
  for (let measured = false; ; measured = true) {
    const batch = requests(round++);
    const want = replies + SESSIONS * 6;
    const t0 = process.hrtime.bigint();
    for (const s of batch) for (const iq of s) m.process(iq);
    // jingle-session's queue runs on later ticks: wait for every reply.
    while (replies < want) { await new Promise(setImmediate); }
    const t1 = process.hrtime.bigint();
    if (measured) { spent += Number(t1 - t0) / 1e6; actions += SESSIONS * 6; }
    if (spent >= MIN_MS) break;
  }
  const expected = round * SESSIONS * 6;
  if (replies !== expected) { console.error('replies ' + replies + ' != ' + expected); process.exit(1); }
  console.log('actions_per_sec ' + Math.round(actions / (spent / 1000)));
}
main();
