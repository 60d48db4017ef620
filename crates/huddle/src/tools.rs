//! `huddle msrp decode` and `huddle jingle parse`: the same output as `cargo xtask msrp
//! decode` and `cargo xtask jingle parse` (one JSON line per frame or error; the Jingle
//! document as JSON, or back to XML with `--to-xml`).

use std::io::{Read, Write};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Subcommand;
use huddle_jingle::Codec;

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

pub(crate) fn run_msrp(command: MsrpCommand) -> Result<ExitCode> {
    let MsrpCommand::Decode { file } = command;
    let mut input = open(&file)?;
    let stdout = std::io::stdout();
    let mut w = std::io::BufWriter::new(stdout.lock());
    let clean = huddle_msrp::summary::write_lines(&mut input, &mut w)
        .with_context(|| format!("decoding {file}"))?;
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
