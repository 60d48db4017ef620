//! Runs huddle's relay client against a real RFC 4976 relay and prints one line per case
//! (`ok NAME` or `FAIL NAME: why`); the xtask conformance suite `kamailio-relay-client`
//! runs it and reads those lines.
//!
//! ```text
//! cargo run -p huddle-transport --example kamailio-interop              # starts Kamailio
//! cargo run -p huddle-transport --example kamailio-interop -- --relay msrp://127.0.0.1:2855;tcp
//! ```
//!
//! Without `--relay` it installs (as root, when missing) and starts Kamailio with
//! `shared/conformance/kamailio/msrp-relay.cfg` on a free port and stops it by pid at the
//! end. Exit status: 0 all passed, 1 a case failed, 2 the relay could not be started
//! (`NOT RUN: why` is printed).

#[path = "../tests/support/interop.rs"]
mod interop;
#[path = "../tests/support/kamailio.rs"]
mod kamailio;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let relay_arg = match args.as_slice() {
        [] => None,
        [flag, uri] if flag == "--relay" => Some(uri.clone()),
        _ => {
            eprintln!("usage: kamailio-interop [--relay MSRP-URI]");
            std::process::exit(2);
        }
    };
    let (guard, uri) = match relay_arg {
        Some(uri) => (None, uri),
        None => match kamailio::Kamailio::start() {
            Ok(k) => {
                let uri = k.relay_uri();
                println!("relay kamailio pid {} on {uri}", k.pid());
                (Some(k), uri)
            }
            Err(why) => {
                println!("NOT RUN: {}", why.lines().next().unwrap_or(""));
                eprintln!("{why}");
                std::process::exit(2);
            }
        },
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cases = runtime.block_on(interop::run(&uri));
    let mut failed = 0;
    for (name, outcome) in &cases {
        match outcome {
            Ok(()) => println!("ok {name}"),
            Err(why) => {
                failed += 1;
                println!("FAIL {name}: {}", why.replace('\n', " "));
            }
        }
    }
    if failed > 0
        && let Some(k) = &guard
    {
        eprintln!("--- kamailio log ---\n{}", k.log());
    }
    drop(guard);
    std::process::exit(if failed > 0 { 1 } else { 0 });
}
