//! `huddle msrp decode` and `huddle jingle parse`: the same output as `cargo xtask msrp
//! decode` and `cargo xtask jingle parse` (one JSON line per frame or error; the Jingle
//! document as JSON, or back to XML with `--to-xml`).

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use bytes::BytesMut;
use clap::Subcommand;
use huddle_jingle::Codec;
use huddle_msrp::summary::FrameSummary;
use huddle_msrp::{DecodeError, Decoder, Limits};

#[derive(Debug, Subcommand)]
pub(crate) enum MsrpCommand {
    /// Decode an MSRP byte stream (a file, or `-` for stdin): one JSON line per frame or
    /// error; exit 1 when the stream had an error.
    Decode {
        /// The input file (`-`: stdin).
        file: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum JingleCommand {
    /// Parse a Jingle IQ (XML) and print its JSON form; exit 1 on bad input.
    Parse {
        /// The input file (`-`: stdin).
        file: String,
        /// Read the JSON form and print XML instead.
        #[arg(long)]
        to_xml: bool,
    },
}

fn open(path: &str) -> Result<Box<dyn Read>> {
    Ok(if path == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        Box::new(std::fs::File::open(path).with_context(|| format!("opening {path}"))?)
    })
}

/// The variant name of an error kind (`BadHeader(..)` -> `BadHeader`).
fn kind_name(e: &DecodeError) -> String {
    let debug = format!("{:?}", e.kind());
    let end = debug
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(debug.len());
    debug[..end].to_owned()
}

pub(crate) fn run_msrp(command: MsrpCommand) -> Result<ExitCode> {
    let MsrpCommand::Decode { file } = command;
    let mut input = open(&file)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let mut decoder = Decoder::new(Limits::default());
    let mut buf = BytesMut::new();
    let mut consumed = 0u64;
    let mut clean = true;
    let mut read = vec![0u8; 64 * 1024];
    let mut eof = false;
    'outer: while !eof {
        let n = input
            .read(&mut read)
            .with_context(|| format!("reading {file}"))?;
        eof = n == 0;
        buf.extend_from_slice(&read[..n]);
        // A non-fatal error consumes the bad frame; two in a row without progress would
        // loop, so that counts as fatal.
        let mut stalled = false;
        loop {
            let before = buf.len();
            let offset = consumed;
            let r = if eof {
                decoder.decode_eof(&mut buf)
            } else {
                decoder.decode(&mut buf)
            };
            let used = before - buf.len();
            consumed += used as u64;
            match r {
                Ok(Some(chunk)) => {
                    stalled = false;
                    writeln!(w, "{}", serde_json::to_string(&FrameSummary::of(&chunk))?)?;
                }
                Ok(None) => break,
                Err(e) => {
                    clean = false;
                    let fatal = e.is_fatal() || (used == 0 && stalled);
                    writeln!(
                        w,
                        r#"{{"error":{},"status":{},"fatal":{fatal},"offset":{offset}}}"#,
                        serde_json::Value::from(kind_name(&e)),
                        e.status().0
                    )?;
                    if fatal {
                        break 'outer;
                    }
                    stalled = used == 0;
                }
            }
        }
    }
    w.flush()?;
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub(crate) fn run_jingle(command: JingleCommand) -> Result<ExitCode> {
    let JingleCommand::Parse { file, to_xml } = command;
    let mut input = Vec::new();
    open(&file)?
        .read_to_end(&mut input)
        .with_context(|| format!("reading {file}"))?;
    let codec = Codec::new();
    if to_xml {
        let value: serde_json::Value = match serde_json::from_slice(&input) {
            Ok(v) => v,
            Err(e) => {
                eprintln!("error: JsonError::Syntax: {e}");
                return Ok(ExitCode::FAILURE);
            }
        };
        match codec.from_json(&value) {
            Ok(doc) => println!("{}", doc.to_xml()),
            Err(e) => {
                eprintln!("error: {e:?}\n  {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    } else {
        match codec.parse(&input) {
            Ok(doc) => println!("{}", serde_json::to_string_pretty(&doc.to_json())?),
            Err(e) => {
                eprintln!("error: {e:?}\n  {e}");
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
