//! Two thousand concurrent WebSocket clients on one broker: every one gets
//! every tick of its symbol, `/stats` counts them all, and when they leave
//! the count goes back to zero (no connection is leaked).

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{ingest_broker, stats, Publisher, Received, Subscriber, WAIT};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const CONNECTIONS: usize = 2_000;
const SYMBOLS: [&str; 4] = ["MC0", "MC1", "MC2", "MC3"];
const TICKS_PER_SYMBOL: u64 = 20;
/// Handshakes in flight at once: enough to keep both cores busy, few enough
/// to stay far below the listen backlog.
const IN_FLIGHT: usize = 64;

/// Raises the soft open-file limit to the hard limit. Each connection costs
/// two descriptors in this process (client and broker side). Returns `false`
/// if the hard limit is too low to run the test.
fn raise_fd_limit() -> bool {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    let needed = (2 * CONNECTIONS + 256) as libc::rlim_t;
    if limit.rlim_max < needed {
        eprintln!(
            "skipping many_connections: the open-file hard limit is {}, {needed} are needed",
            limit.rlim_max
        );
        return false;
    }
    true
}

/// Connects with small buffers (tungstenite's default read buffer is
/// 128 KiB, which 2,000 clients do not need) and reads the `?topics=` ack.
async fn connect(addr: std::net::SocketAddr, sym: &'static str) -> Subscriber {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/ws?topics={sym}");
    let (ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
        .await
        .unwrap();
    let mut sub = Subscriber { ws };
    assert_eq!(sub.expect_ack().await, [sym]);
    sub
}

/// Polls `/stats` until it counts `n` connections.
async fn wait_connections(addr: std::net::SocketAddr, n: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = stats(addr).await["connections"].as_u64().unwrap();
        if now == n {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/stats counts {now} connections, expected {n}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_clients_each_get_every_tick() {
    if !raise_fd_limit() {
        return;
    }
    let started = std::time::Instant::now();
    // All 2,000 come from 127.0.0.1, as many as one address may hold by
    // default: lift the per-address limit (`hostile.rs` tests it).
    let broker = ingest_broker(tickcast_broker::Limits {
        max_connections_per_ip: 0,
        ..common::limits()
    })
    .await;
    let addr = broker.local_addr();

    let mut connecting = JoinSet::new();
    let mut subs = Vec::with_capacity(CONNECTIONS);
    for i in 0..CONNECTIONS {
        if connecting.len() == IN_FLIGHT {
            subs.push(connecting.join_next().await.unwrap().unwrap());
        }
        let sym = SYMBOLS[i % SYMBOLS.len()];
        connecting.spawn(async move { (sym, connect(addr, sym).await) });
    }
    while let Some(done) = connecting.join_next().await {
        subs.push(done.unwrap());
    }
    assert_eq!(subs.len(), CONNECTIONS);
    wait_connections(addr, CONNECTIONS as u64).await;
    eprintln!("{CONNECTIONS} connected in {:?}", started.elapsed());

    let mut publisher = Publisher::connect(&broker).await;
    for _ in 0..TICKS_PER_SYMBOL {
        publisher.publish(&SYMBOLS).await;
    }

    let mut reading = JoinSet::new();
    for (sym, mut sub) in subs {
        reading.spawn(async move {
            let want = HashMap::from([(sym.to_owned(), TICKS_PER_SYMBOL)]);
            let got = sub.read_until(&want, true).await;
            assert_eq!(got as u64, TICKS_PER_SYMBOL, "{sym}");
            // Nothing else was sent to it: close cleanly and see the end.
            sub.ws.close(None).await.unwrap();
            for _ in 0..3 {
                match sub.next().await {
                    Received::Gone => return,
                    Received::Close(Some(1000), _) => {}
                    other => panic!("{sym}: expected the close echo, got {other:?}"),
                }
            }
            panic!("{sym}: the connection did not end after the close handshake");
        });
    }
    while let Some(done) = reading.join_next().await {
        done.unwrap();
    }
    eprintln!("all ticks read and closed at {:?}", started.elapsed());

    wait_connections(addr, 0).await;
    let m = broker.metrics();
    assert_eq!(m.connections_total.get(), CONNECTIONS as u64);
    assert_eq!(m.ticks_in.get(), TICKS_PER_SYMBOL * SYMBOLS.len() as u64);
    // Per client: the ack, every tick, and the close echo.
    assert_eq!(
        m.frames_out.get(),
        CONNECTIONS as u64 * (TICKS_PER_SYMBOL + 2)
    );
    assert_eq!(m.conflated.get() + m.dropped.get(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
