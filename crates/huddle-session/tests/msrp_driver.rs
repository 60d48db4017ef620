//! The async MSRP session driver and the MSRP byte stream over real loopback sockets.

use std::time::Duration;

use huddle_msrp::MsrpUri;
use huddle_session::msrp::driver::spawn;
use huddle_session::msrp::stream::{RFB, into_stream};
use huddle_session::msrp::{
    Confirmation, MessageOutcome, MsrpConfig, MsrpEvent, MsrpSession, SendOptions,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn socket_pair() -> (TcpStream, TcpStream) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (a, b) = tokio::join!(TcpStream::connect(addr), l.accept());
    (a.unwrap(), b.unwrap().0)
}

fn sessions(chunk: usize) -> (MsrpSession, MsrpSession) {
    let a: MsrpUri = "msrp://127.0.0.1:7001/alice1;tcp".parse().unwrap();
    let b: MsrpUri = "msrp://127.0.0.1:7002/bob22;tcp".parse().unwrap();
    let mut ca = MsrpConfig::new(vec![a.clone()], vec![b.clone()]);
    let mut cb = MsrpConfig::new(vec![b], vec![a]);
    ca.max_chunk_size = chunk;
    cb.max_chunk_size = chunk;
    (MsrpSession::new(ca), MsrpSession::new(cb))
}

#[tokio::test]
async fn deliver_waits_for_the_outcome_and_a_cut_connection_fails_visibly() {
    let (sa, sb) = socket_pair().await;
    let (a, b) = sessions(1024);
    let ha = spawn(sa, a);
    let mut hb = spawn(sb, b);
    let (id, outcome) = ha
        .deliver("text/plain", vec![b'z'; 5000], SendOptions::default())
        .await
        .unwrap();
    assert_eq!(
        outcome,
        MessageOutcome::Delivered {
            confirmation: Confirmation::Responses
        }
    );
    let got = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let Some(MsrpEvent::Message {
                message_id, body, ..
            }) = hb.next_event().await
            {
                return (message_id, body);
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got.0, id);
    assert_eq!(got.1.len(), 5000);

    // The peer goes away: the next message fails, it is not lost silently.
    drop(hb);
    let (_, outcome) = tokio::time::timeout(
        Duration::from_secs(10),
        ha.deliver("text/plain", vec![b'q'; 100_000], SendOptions::default()),
    )
    .await
    .expect("an outcome, not silence")
    .unwrap();
    assert!(
        matches!(outcome, MessageOutcome::Failed { .. }),
        "{outcome:?}"
    );
}

#[tokio::test]
async fn tcp_service_tunnelled_through_an_msrp_stream() {
    // An echo service on loopback.
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let echo_addr = echo.local_addr().unwrap();
    tokio::spawn(async move {
        let (mut s, _) = echo.accept().await.unwrap();
        let (mut r, mut w) = s.split();
        tokio::io::copy(&mut r, &mut w).await.unwrap();
    });
    // The MSRP connection between the two ends.
    let (sa, sb) = socket_pair().await;
    let (a, b) = sessions(4096);
    let mut stream_a = into_stream(spawn(sa, a), RFB, 4096);
    let mut stream_b = into_stream(spawn(sb, b), RFB, 4096);
    // Far end: bridge the MSRP stream to the echo service.
    tokio::spawn(async move {
        let mut svc = TcpStream::connect(echo_addr).await.unwrap();
        let _ = tokio::io::copy_bidirectional(&mut stream_b, &mut svc).await;
    });
    let data: Vec<u8> = (0..300_000u32).map(|i| (i * 31 % 251) as u8).collect();
    let (mut rd, mut wr) = tokio::io::split(&mut stream_a);
    let expected = data.clone();
    let result = tokio::time::timeout(Duration::from_secs(30), async move {
        let writer = async {
            wr.write_all(&data).await.unwrap();
            wr.flush().await.unwrap();
        };
        let reader = async {
            let mut back = vec![0u8; expected.len()];
            rd.read_exact(&mut back).await.unwrap();
            back
        };
        let ((), back) = tokio::join!(writer, reader);
        back
    })
    .await
    .expect("the tunnel carries the data both ways");
    assert_eq!(result.len(), 300_000);
    assert!(
        result
            == (0..300_000u32)
                .map(|i| (i * 31 % 251) as u8)
                .collect::<Vec<_>>()
    );
}
