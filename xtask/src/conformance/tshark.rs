//! Suite `tshark-msrp`: frames huddle encodes, one per TCP segment in a pcap, must be read
//! by Wireshark's MSRP dissector (`tshark`, an independent parser) exactly as huddle meant
//! them: start line, transaction id, method or status, paths, Message-ID, Byte-Range,
//! report headers, Status, content headers, authentication headers, end-line and flag.
//!
//! tshark does not check Byte-Range against the body, so the suite does (RFC 4975 §7.1.1).

use std::collections::BTreeMap;
use std::process::Command;

use bytes::Bytes;
use huddle_msrp::uri::parse_path;
use huddle_msrp::{
    ByteRange, Chunk, ChunkBuilder, Flag, KnownHeader, Method, ReportRequest, StatusCode,
    TransactionId,
};
use serde_json::Value;

use super::pcap;
use super::{Ctx, SuiteResult};

/// Headers compared with the dissector's field of the same meaning.
const HEADER_FIELDS: &[(KnownHeader, &str)] = &[
    (KnownHeader::ToPath, "msrp.to.path"),
    (KnownHeader::FromPath, "msrp.from.path"),
    (KnownHeader::MessageId, "msrp.messageid"),
    (KnownHeader::ByteRange, "msrp.byte.range"),
    (KnownHeader::SuccessReport, "msrp.success.report"),
    (KnownHeader::FailureReport, "msrp.failure.report"),
    (KnownHeader::Status, "msrp.status"),
    (KnownHeader::ContentType, "msrp.content.type"),
    (KnownHeader::ContentId, "msrp.content.id"),
    (KnownHeader::ContentDescription, "msrp.content.description"),
    (KnownHeader::ContentDisposition, "msrp.content.disposition"),
    (KnownHeader::UsePath, "msrp.use.path"),
    (KnownHeader::WwwAuthenticate, "msrp.www.authenticate"),
    (KnownHeader::Authorization, "msrp.authorization"),
    (KnownHeader::AuthenticationInfo, "msrp.authentication.info"),
];

/// Fields taken from the start and end lines.
const LINE_FIELDS: &[&str] = &[
    "msrp.request.line",
    "msrp.response.line",
    "msrp.transaction.id",
    "msrp.method",
    "msrp.status.code",
    "msrp.end.line",
    "msrp.cnt.flg",
];

pub(super) fn run(ctx: &Ctx) -> SuiteResult {
    let mut r = SuiteResult::new("tshark-msrp");
    if !crate::util::have("tshark") {
        if crate::util::is_root() {
            println!("tshark is missing: installing Debian's tshark with apt-get");
            if let Err(e) = crate::util::apt_install(&["tshark"]) {
                return r
                    .could_not_run(format!("tshark is not installed and apt-get failed: {e:#}"));
            }
        } else {
            return r.could_not_run(
                "tshark is not installed and this is not root: `apt-get install tshark` (Debian package)",
            );
        }
        if !crate::util::have("tshark") {
            return r.could_not_run("tshark still missing after apt-get install tshark");
        }
    }

    let chunks = match corpus() {
        Ok(c) => c,
        Err(e) => {
            r.case("build the corpus", Err(e));
            return r;
        }
    };
    let frames: Vec<Vec<u8>> = chunks.iter().map(|c| c.to_bytes().to_vec()).collect();
    let dir = ctx.root.join("target/xtask/conformance");
    let file = dir.join("tshark-msrp.pcap");
    if let Err(e) = std::fs::create_dir_all(&dir)
        .and_then(|()| std::fs::write(&file, pcap::tcp_stream(&frames)))
    {
        return r.could_not_run(format!("cannot write {}: {e}", file.display()));
    }
    let mut fields: Vec<&str> = vec!["frame.number"];
    fields.extend(LINE_FIELDS);
    fields.extend(HEADER_FIELDS.iter().map(|(_, f)| *f));
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(&file).args([
        "-d",
        &format!("tcp.port=={},msrp", pcap::SERVER_PORT),
        "-T",
        "json",
    ]);
    for f in &fields {
        cmd.args(["-e", f]);
    }
    let out = match cmd.output() {
        Ok(o) if o.status.success() => o,
        Ok(o) => {
            return r.could_not_run(format!(
                "`{}` failed ({}): {}",
                crate::util::describe(&cmd),
                o.status,
                String::from_utf8_lossy(&o.stderr)
            ));
        }
        Err(e) => return r.could_not_run(format!("cannot start tshark: {e}")),
    };
    let packets: Vec<Value> = match serde_json::from_slice(&out.stdout) {
        Ok(Value::Array(p)) => p,
        Ok(other) => {
            return r.could_not_run(format!(
                "tshark printed JSON that is not an array: {other:.200}"
            ));
        }
        Err(e) => return r.could_not_run(format!("tshark's JSON did not parse: {e}")),
    };
    r.note(format!(
        "pcap kept at {} ({} frames)",
        file.display(),
        frames.len()
    ));
    if packets.len() != chunks.len() {
        r.case(
            "packet count",
            Err(format!(
                "tshark read {} packets, wrote {}",
                packets.len(),
                chunks.len()
            )),
        );
    }
    for (i, (chunk, packet)) in chunks.iter().zip(&packets).enumerate() {
        let label = format!("frame {} ({})", i + 1, describe(chunk));
        let layers = fields_of(packet);
        r.case(
            label,
            compare(chunk, &layers)
                .and_then(|()| check_byte_range(chunk))
                .and_then(|()| self_decode(chunk)),
        );
    }
    r
}

/// A short description of a chunk for the report.
fn describe(c: &Chunk) -> String {
    match (c.method(), c.status_code()) {
        (Some(m), _) => format!(
            "{m} {} body {} flag {}",
            c.transaction_id,
            c.body_len().unwrap_or(0),
            c.flag.as_byte() as char
        ),
        (None, Some(s)) => format!("{s} {}", c.transaction_id),
        (None, None) => c.transaction_id.to_string(),
    }
}

/// The `-e` fields of one packet of `tshark -T json` output: name -> values.
fn fields_of(packet: &Value) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    if let Some(layers) = packet["_source"]["layers"].as_object() {
        for (k, v) in layers {
            let vals = match v {
                Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map_or_else(|| x.to_string(), str::to_owned))
                    .collect(),
                Value::String(s) => vec![s.clone()],
                other => vec![other.to_string()],
            };
            out.insert(k.clone(), vals);
        }
    }
    out
}

/// Field by field: what tshark read against what huddle encoded.
fn compare(c: &Chunk, got: &BTreeMap<String, Vec<String>>) -> Result<(), String> {
    let mut diffs = Vec::new();
    let mut expect = |field: &str, want: Option<String>| {
        let have = got.get(field).and_then(|v| v.first()).cloned();
        if have != want {
            diffs.push(format!("{field}: tshark {have:?}, huddle {want:?}"));
        }
    };
    let tid = c.transaction_id.as_str();
    match (c.method(), c.status_code()) {
        (Some(m), _) => {
            expect("msrp.request.line", Some(format!("MSRP {tid} {m}")));
            expect("msrp.response.line", None);
            expect("msrp.method", Some(m.to_string()));
            expect("msrp.status.code", None);
        }
        (None, Some(s)) => {
            let line = match c.comment() {
                Some(comment) => format!("MSRP {tid} {s} {comment}"),
                None => format!("MSRP {tid} {s}"),
            };
            expect("msrp.response.line", Some(line));
            expect("msrp.request.line", None);
            expect("msrp.status.code", Some(s.0.to_string()));
        }
        (None, None) => expect(
            "msrp.request.line",
            Some("neither request nor response".into()),
        ),
    }
    let flag = (c.flag.as_byte() as char).to_string();
    expect("msrp.end.line", Some(format!("-------{tid}{flag}")));
    expect("msrp.cnt.flg", Some(flag));
    for (h, field) in HEADER_FIELDS {
        expect(field, c.headers().get(*h).map(str::to_owned));
    }
    // The transaction id appears on the start line and the end-line.
    match got.get("msrp.transaction.id") {
        Some(ids) if !ids.is_empty() && ids.iter().all(|t| t == tid) => {}
        other => diffs.push(format!(
            "msrp.transaction.id: tshark {other:?}, huddle {tid:?} (start and end line)"
        )),
    }
    // The typed paths print back to exactly what tshark read.
    for (h, field) in [
        (KnownHeader::ToPath, "msrp.to.path"),
        (KnownHeader::FromPath, "msrp.from.path"),
    ] {
        let typed = c
            .headers()
            .path(h)
            .map(|p| huddle_msrp::uri::format_path(&p));
        let have = got.get(field).and_then(|v| v.first());
        match (typed, have) {
            (Ok(t), Some(h)) if &t == h => {}
            (t, h) => diffs.push(format!("{field} (typed): tshark {h:?}, huddle {t:?}")),
        }
    }
    if diffs.is_empty() {
        Ok(())
    } else {
        Err(diffs.join("; "))
    }
}

/// RFC 4975 §7.1.1: a SEND chunk's Byte-Range covers exactly its body ("range-end ... the
/// position of the last byte of the chunk"), and never ends past the total. (A REPORT's
/// Byte-Range names the range being reported, §7.1.2, not its own body.)
fn check_byte_range(c: &Chunk) -> Result<(), String> {
    if c.method() != Some(&Method::SEND) {
        return Ok(());
    }
    let Some(range) = c.byte_range().map_err(|e| format!("Byte-Range: {e}"))? else {
        return Ok(());
    };
    let len = c.body_len().unwrap_or(0) as u64;
    if let Some(n) = range.len()
        && n != len
    {
        return Err(format!(
            "Byte-Range {range} announces {n} bytes, body has {len}"
        ));
    }
    if let Some(total) = range.total {
        let last = range.start + len - 1;
        if len > 0 && last > total {
            return Err(format!(
                "Byte-Range {range}: body ends at {last}, past the total {total}"
            ));
        }
    }
    Ok(())
}

/// huddle reads its own frame back as the same chunk, with nothing left over.
fn self_decode(c: &Chunk) -> Result<(), String> {
    let mut buf = bytes::BytesMut::from(&c.to_bytes()[..]);
    let mut dec = huddle_msrp::Decoder::default();
    match dec.decode_eof(&mut buf) {
        Ok(Some(back)) if &back == c && buf.is_empty() => Ok(()),
        Ok(Some(back)) if &back == c => {
            Err(format!("{} bytes left after huddle decoded it", buf.len()))
        }
        other => Err(format!("huddle decodes its own frame as {other:?}")),
    }
}

fn path(s: &str) -> Result<Vec<huddle_msrp::MsrpUri>, String> {
    parse_path(s).map_err(|e| format!("{s}: {e}"))
}

fn tid(s: &str) -> Result<TransactionId, String> {
    TransactionId::new(s).map_err(|e| e.to_string())
}

/// The chunks the suite encodes: requests with and without bodies, binary bodies with
/// end-line look-alikes, every flag, `*` in Byte-Range, relay paths, responses with and
/// without comments, REPORTs with Status, AUTH and its answers, an extension method.
pub(crate) fn corpus() -> Result<Vec<Chunk>, String> {
    let alice = path("msrp://alice.example.com:7777/iau39soe2843z;tcp")?;
    let bob = path("msrp://bob.example.com:8888/9di4eae923wzd;tcp")?;
    let relays = path(
        "msrps://relay1.example.com:2855/s11x;tcp msrps://[2001:db8::7]:2856/s22y;tcp msrps://bob@bob.example.com:8888/9di4eae923wzd;tcp",
    )?;
    let relay = path("msrp://127.0.0.1:2855;tcp")?;
    let client = path("msrp://127.0.0.1:49488/alicesess;tcp")?;
    let e = |e: huddle_msrp::HeaderError| e.to_string();

    let mut binary: Vec<u8> = (0..=255u8).collect();
    // End-line look-alikes inside the body: this tid and another one, neither preceded by
    // the CRLF that starts a real end-line (RFC 4975 §7.1: the end-line is CRLF, seven
    // dashes, the tid and the flag). A body line `\r\n-------OTHERTID$` is legal too, but
    // Wireshark 4.0's dissector ends the body at it, so it is left to huddle's own tests.
    binary.extend_from_slice(b"x-------bin0000001$\r\ny-------otherTid1$\r\n");
    let big: Vec<u8> = (0..16 * 1024).map(|i| b'a' + (i % 26) as u8).collect();

    let send = ChunkBuilder::send(&bob, &alice)
        .transaction_id(tid("a786hjs2")?)
        .message_id("87652491")
        .reports(ReportRequest::Yes, ReportRequest::Yes)
        .data("text/plain", Bytes::from_static(b"Hey Bob, are you there?"))
        .build()
        .map_err(e)?;
    let mut out = vec![send.clone()];
    // An empty SEND (RFC 4975 §7.1.1 permits a SEND with no body, e.g. a keep-alive).
    out.push(
        ChunkBuilder::send(&bob, &alice)
            .transaction_id(tid("empty001")?)
            .message_id("keepalive1")
            .byte_range(ByteRange {
                start: 1,
                end: Some(0),
                total: Some(0),
            })
            .build()
            .map_err(e)?,
    );
    // A first chunk through two relays, binary, more to come.
    let total = binary.len() as u64 + 100;
    out.push(
        ChunkBuilder::send(&relays, &alice)
            .transaction_id(tid("bin0000001")?)
            .message_id("file-4711")
            .byte_range(ByteRange::new(1, binary.len() as u64, Some(total)))
            .reports(ReportRequest::No, ReportRequest::Partial)
            .header(KnownHeader::ContentId, "<part1@alice.example.com>")
            .header(KnownHeader::ContentDescription, "a picture")
            .header(
                KnownHeader::ContentDisposition,
                "attachment; filename=\"pic.bin\"",
            )
            .data("application/octet-stream", binary.clone())
            .flag(Flag::More)
            .build()
            .map_err(e)?,
    );
    // Its continuation with an unknown end (`*`), then aborted (`#`).
    out.push(
        ChunkBuilder::send(&relays, &alice)
            .transaction_id(tid("bin0000002")?)
            .message_id("file-4711")
            .byte_range(ByteRange {
                start: binary.len() as u64 + 1,
                end: None,
                total: Some(total),
            })
            .data(
                "application/octet-stream",
                Bytes::from_static(b"\x00\x01tail"),
            )
            .flag(Flag::Abort)
            .build()
            .map_err(e)?,
    );
    // Unknown total (`*`) and a large body.
    out.push(
        ChunkBuilder::send(&bob, &alice)
            .transaction_id(tid("big00001")?)
            .message_id("stream-9")
            .byte_range(ByteRange {
                start: 1,
                end: Some(big.len() as u64),
                total: None,
            })
            .data("text/plain; charset=utf-8", big)
            .flag(Flag::More)
            .build()
            .map_err(e)?,
    );
    // Responses: with the canonical comment, with a free comment, without a comment.
    out.push(
        send.response(StatusCode::OK, Some("OK"))
            .ok_or("no response to SEND")?,
    );
    out.push(
        send.response(StatusCode(413), Some("Too big, send it in pieces"))
            .ok_or("no response")?,
    );
    out.push(send.response(StatusCode(481), None).ok_or("no response")?);
    // REPORTs: success and failure, with Status.
    let ok_range = ByteRange::new(1, 23, Some(23));
    let mut report = send
        .report(StatusCode::OK, None, ok_range)
        .ok_or("no REPORT for SEND")?;
    report.transaction_id = tid("rep00001")?;
    out.push(report);
    let mut failure = send
        .report(
            StatusCode(413),
            Some("Requested Entity Too Large"),
            ok_range,
        )
        .ok_or("no REPORT")?;
    failure.transaction_id = tid("rep00002")?;
    out.push(failure);
    // RFC 4976 AUTH with its challenge and its success.
    let auth = ChunkBuilder::request(Method::AUTH)
        .transaction_id(tid("auth0001")?)
        .paths(&relay, &client)
        .header(
            KnownHeader::Authorization,
            "Digest username=\"alice\", realm=\"127.0.0.1\", nonce=\"n0nce\", uri=\"msrp://127.0.0.1:2855;tcp\", response=\"67dc7f4c459f2f09c93937f8b1af502c\", qop=auth, nc=00000001, cnonce=\"557696b1\"",
        )
        .build()
        .map_err(e)?;
    out.push(auth.clone());
    let mut challenge = auth
        .response(StatusCode(401), Some("Unauthorized"))
        .ok_or("no response to AUTH")?;
    challenge
        .headers_mut()
        .append(
            KnownHeader::WwwAuthenticate,
            "Digest realm=\"127.0.0.1\", nonce=\"n0nce\", qop=\"auth\"",
        )
        .map_err(e)?;
    out.push(challenge);
    let mut granted = auth
        .response(StatusCode::OK, Some("OK"))
        .ok_or("no response to AUTH")?;
    granted
        .headers_mut()
        .append(
            KnownHeader::UsePath,
            "msrp://127.0.0.1:2855/s25117x1795314758x78199;tcp",
        )
        .map_err(e)?;
    granted
        .headers_mut()
        .append(KnownHeader::Expires, "3600")
        .map_err(e)?;
    granted
        .headers_mut()
        .append(KnownHeader::AuthenticationInfo, "nextnonce=\"abc\"")
        .map_err(e)?;
    out.push(granted);
    // NICKNAME (RFC 7701) and an unregistered method, with an extension header.
    out.push(
        ChunkBuilder::request(Method::parse(b"NICKNAME").ok_or("NICKNAME")?)
            .transaction_id(tid("nick0001")?)
            .paths(&bob, &alice)
            .header(KnownHeader::UseNickname, "\"Alice\"")
            .build()
            .map_err(e)?,
    );
    out.push(
        ChunkBuilder::request(Method::Extension("XPING".into()))
            .transaction_id(tid("xping001")?)
            .paths(&bob, &alice)
            .extension_header("X-Huddle-Test", "1")
            .build()
            .map_err(e)?,
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_corpus_builds_and_its_byte_ranges_match_the_bodies() {
        let chunks = corpus().unwrap();
        assert!(chunks.len() >= 14);
        for c in &chunks {
            check_byte_range(c).unwrap();
            self_decode(c).unwrap();
            assert!(c.to_bytes().len() <= pcap::MAX_PAYLOAD);
        }
    }

    #[test]
    fn a_field_tshark_reads_differently_is_caught() {
        let c = corpus().unwrap().remove(0);
        let mut fields: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut put = |k: &str, v: &str| fields.insert(k.to_owned(), vec![v.to_owned()]);
        put("msrp.request.line", "MSRP a786hjs2 SEND");
        put("msrp.method", "SEND");
        put("msrp.end.line", "-------a786hjs2$");
        put("msrp.cnt.flg", "$");
        for (h, f) in HEADER_FIELDS {
            if let Some(v) = c.headers().get(*h) {
                put(f, v);
            }
        }
        fields.insert(
            "msrp.transaction.id".into(),
            vec!["a786hjs2".into(), "a786hjs2".into()],
        );
        compare(&c, &fields).unwrap();
        fields.insert("msrp.byte.range".into(), vec!["1-22/23".into()]);
        let err = compare(&c, &fields).unwrap_err();
        assert!(err.contains("msrp.byte.range"), "{err}");
    }

    #[test]
    fn a_byte_range_that_does_not_match_the_body_is_caught() {
        let alice = path("msrp://a.example.com:1/x;tcp").unwrap();
        let c = ChunkBuilder::send(&alice, &alice)
            .byte_range(ByteRange::new(1, 5, Some(5)))
            .data("text/plain", Bytes::from_static(b"four"))
            .build()
            .unwrap();
        assert!(check_byte_range(&c).is_err());
    }
}
