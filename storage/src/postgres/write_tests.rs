//! Tests of the PostgreSQL span writer's two ways of writing new rows, on the database
//! `CAUSEWAY_TEST_PG` names (the conformance suite covers the rest of the writer).

use std::sync::atomic::Ordering;

use sqlx::Connection;

use super::*;
use crate::database::PostgresUrl;
use crate::ids::{SpanId, TraceId};
use crate::interface::SpanStore;
use crate::postgres::nodelay::{self, Nagle};
use crate::record::SpanRecord;
use crate::testsuite::{self, PgTestSchema};

/// Spans with every kind of column: ids, text, numbers, NULLs, a link, an event.
fn spans(trace: u8) -> Vec<SpanRecord> {
    let send = testsuite::span(TraceId([trace; 16]), SpanId([1; 8]))
        .send("orders")
        .service("checkout")
        .times(100, 250)
        .correlation("ord-1")
        .message_id("m-1")
        .partition(3)
        .offset(42)
        .key("customer-7")
        .attribute("note", "fragile")
        .resource("host.name", "box-1")
        .event(120, "retry")
        .link(TraceId([9; 16]), SpanId([9; 8]))
        .error("broker timeout")
        .build();
    let child = testsuite::span(TraceId([trace; 16]), SpanId([2; 8]))
        .parent(SpanId([1; 8]))
        .name("serialise")
        .times(110, 120)
        .build();
    vec![send, child]
}

/// Writes `written` as one batch and reads its trace back.
async fn round_trip(store: &PgStore, written: &[SpanRecord]) -> Vec<SpanRecord> {
    store
        .write_spans(vec![EncodedSpans::encode(written)])
        .await
        .unwrap();
    store
        .spans_by_trace(written[0].trace_id, 100)
        .await
        .unwrap()
}

/// On Linux, a connection over TCP gets `TCP_NODELAY`, so the writer copies its new rows;
/// a retry of them then fails the copy and is upserted.
#[cfg(target_os = "linux")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tcp_nagle_is_turned_off_and_new_rows_are_copied() {
    let schema = PgTestSchema::create().await;
    let mut connection = sqlx::PgConnection::connect(&schema.url).await.unwrap();
    let over_tcp: Option<i32> = sqlx::query_scalar("SELECT inet_client_port()")
        .fetch_one(&mut connection)
        .await
        .unwrap();
    assert!(
        over_tcp.is_some(),
        "the test database must be reached over TCP"
    );
    assert_eq!(
        nodelay::turn_off(&mut connection).await.unwrap(),
        Nagle::Off
    );
    connection.close().await.unwrap();

    let store = PgStore::open(&PostgresUrl::parse(&schema.url).unwrap())
        .await
        .unwrap();
    let written = spans(1);
    assert_eq!(round_trip(&store, &written).await, written);
    assert!(store.copies_new_rows());
    assert_eq!(store.upserts_left.load(Ordering::Relaxed), 0);
    let retried = round_trip(&store, &written).await;
    assert_eq!(retried, written);
    assert_eq!(
        store.upserts_left.load(Ordering::Relaxed),
        UPSERTS_AFTER_DUPLICATE,
        "the copy of a stored span failed and the write was upserted"
    );
    assert_eq!(store.span_count().await.unwrap(), 2);
    store.pool.close().await;
    schema.drop().await;
}

/// Where a connection may hold small writes back, new rows are inserted: the same rows
/// read back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn where_nagle_may_delay_new_rows_are_inserted() {
    let schema = PgTestSchema::create().await;
    let store = PgStore::open(&PostgresUrl::parse(&schema.url).unwrap())
        .await
        .unwrap();
    store.nagle_seen.store(true, Ordering::Relaxed);
    assert!(!store.copies_new_rows());
    let written = spans(2);
    assert_eq!(round_trip(&store, &written).await, written);
    assert_eq!(store.span_count().await.unwrap(), 2);
    store.pool.close().await;
    schema.drop().await;
}

/// Set in the child process that forwards the test's connections: the server's address.
const PROXY_TO: &str = "CAUSEWAY_PROXY_TEST_TO";

/// The line on which the proxy names its port.
const PROXY_LISTENING: &str = "proxy listening on port ";

/// Through a proxy, the server sees the proxy's port and no socket of this process has
/// those ends: the store inserts new rows, and they read back the same. The proxy runs in a
/// process of its own (this test, started again), as a proxy in this process would own a
/// socket with the server's ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy_new_rows_are_inserted() {
    if let Ok(server) = std::env::var(PROXY_TO) {
        forward_connections(&server).await;
        return;
    }
    let schema = PgTestSchema::create().await;
    let options: sqlx::postgres::PgConnectOptions = schema.url.parse().unwrap();
    let server = format!("{}:{}", options.get_host(), options.get_port());
    let mut proxy = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "postgres::write::tests::through_a_proxy_new_rows_are_inserted",
            "--nocapture",
        ])
        .env(PROXY_TO, &server)
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let port = proxy_port(proxy.stdout.take().unwrap()).await;
    let (user, database) = schema.url.split_once('@').unwrap();
    let (_, database) = database.split_once('/').unwrap();
    let proxied = format!("{user}@127.0.0.1:{port}/{database}");

    let store = PgStore::open(&PostgresUrl::parse(&proxied).unwrap())
        .await
        .unwrap();
    assert!(
        !store.copies_new_rows(),
        "no socket has the ends the server sees"
    );
    let written = spans(3);
    assert_eq!(round_trip(&store, &written).await, written);
    store.pool.close().await;
    proxy.kill().await.unwrap();
    schema.drop().await;
}

/// The port the proxy printed.
async fn proxy_port(stdout: tokio::process::ChildStdout) -> u16 {
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(port) = line.strip_prefix(PROXY_LISTENING) {
            return port.trim().parse().unwrap();
        }
    }
    panic!("the proxy exited without naming its port");
}

/// Forwards every connection to a loopback port to `server`, until killed.
async fn forward_connections(server: &str) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{PROXY_LISTENING}{}", listener.local_addr().unwrap().port());
    loop {
        let (mut client, _) = listener.accept().await.unwrap();
        let server = server.to_owned();
        tokio::spawn(async move {
            if let Ok(mut upstream) = tokio::net::TcpStream::connect(&server).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}
