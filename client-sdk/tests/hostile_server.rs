//! A server that sends garbage must produce `Event::Error`s, never a panic,
//! and the client must go on reading what follows.

mod common;

use common::{next_event, scripted_server, tick};
use fastwebsockets::OpCode;
use tickcast_client::{Client, ClientError, Event};
use tickcast_protocol::ClientRequest;

#[tokio::test]
async fn garbage_frames_become_error_events_and_valid_ticks_still_arrive() {
    let mut crossed = tick("AAPL", 1);
    crossed.bid = crossed.ask + 1.0;
    let mut truncated = tick("AAPL", 1).to_vec();
    truncated.pop();
    let script = vec![
        (
            OpCode::Binary,
            b"\x00\x01\x02 definitely not msgpack".to_vec(),
        ),
        (OpCode::Binary, crossed.to_vec()),
        (OpCode::Binary, truncated),
        (OpCode::Binary, Vec::new()),
        (OpCode::Text, b"{\"type\":\"tick\"}".to_vec()),
        (OpCode::Binary, tick("AAPL", 1).to_vec()),
    ];
    let (addr, mut requests) = scripted_server(script).await;
    let mut client = Client::connect(&format!("ws://{addr}/ws")).await.unwrap();
    client.subscribe(["AAPL"]).await.unwrap();
    assert_eq!(
        requests.recv().await.unwrap(),
        ClientRequest::subscribe(vec!["AAPL".into()])
    );

    for _ in 0..4 {
        match next_event(&mut client).await {
            Event::Error(ClientError::Decode(_)) => {}
            other => panic!("expected a decode error, got {other:?}"),
        }
    }
    assert!(matches!(
        next_event(&mut client).await,
        Event::Error(ClientError::Protocol(_))
    ));
    match next_event(&mut client).await {
        Event::Tick(t) => {
            assert_eq!((t.tick.sym.as_str(), t.tick.seq), ("AAPL", 1));
            assert_eq!(&t.raw[..], &t.tick.to_vec()[..]);
        }
        other => panic!("expected the valid tick, got {other:?}"),
    }
    let stats = client.stats();
    assert_eq!((stats.errors, stats.ticks), (5, 1));
    client.close().await;
}

#[tokio::test]
async fn invalid_topics_are_refused_before_sending() {
    let (addr, _requests) = scripted_server(Vec::new()).await;
    let client = Client::connect(&format!("ws://{addr}/ws")).await.unwrap();
    for bad in ["", "has space", &"X".repeat(40)] {
        assert!(matches!(
            client.subscribe([bad]).await,
            Err(ClientError::InvalidTopic(_))
        ));
    }
}
