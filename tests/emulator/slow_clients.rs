//! Slow and abusive clients (issue 14; `ordergrid::http_server`): connections that trickle their
//! headers or never finish their body are closed (the body with a 408), a declared length over
//! the limit is refused at once, and publishes are answered all the while. Durations are
//! configured short so the test runs in about a second.

use std::time::Duration;

use ordergrid::http_server::HttpLimits;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{PATIENCE, Setup, event, eventually_async, file, topic};

const SLOW: usize = 100;

/// Reads what the server sends until it closes the connection.
async fn until_closed(mut stream: TcpStream) -> String {
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer).await;
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_stalled_bodies_are_closed_while_publishes_are_answered() {
    let limits = HttpLimits {
        header_timeout: Duration::from_millis(500),
        body_timeout: Duration::from_millis(500),
        max_connections: 3 * SLOW,
    };
    let emulator = Setup::new(file(vec![topic("orders", vec![])]))
        .http(limits)
        .start()
        .await;
    let address = format!("127.0.0.1:{}", emulator.port);
    let path = "/orders/api/events?api-version=2018-01-01";

    // Headers trickled a byte every 50 ms (pacing the client, not waiting for the server),
    // never finished.
    let mut trickling = Vec::new();
    for _ in 0..SLOW {
        let stream = TcpStream::connect(&address).await.unwrap();
        let (mut read, mut write) = stream.into_split();
        let head = format!("POST {path} HTTP/1.1\r\nX-Slow: ");
        tokio::spawn(async move {
            if write.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            while write.write_all(b"a").await.is_ok() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        trickling.push(async move {
            let mut answer = Vec::new();
            let _ = read.read_to_end(&mut answer).await;
            String::from_utf8_lossy(&answer).into_owned()
        });
    }
    // Headers complete, a body of 512 KiB declared and 64 KiB sent.
    let mut stalled = Vec::new();
    for _ in 0..SLOW {
        let mut stream = TcpStream::connect(&address).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\naeg-sas-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            emulator.key("orders").expose_secret(),
            512 * 1024
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        stream.write_all(&vec![b' '; 64 * 1024]).await.unwrap();
        stalled.push(stream);
    }

    // Meanwhile, publishes are answered.
    for i in 0..20 {
        emulator
            .publish_ok(
                "orders",
                &[event(&format!("e-{i}"), "NewOrder", json!({"orderId": i}))],
            )
            .await;
    }
    // A declared length over the limit is refused at once, not waited for.
    let mut huge = TcpStream::connect(&address).await.unwrap();
    huge.write_all(
        format!(
            "POST {path} HTTP/1.1\r\nHost: {address}\r\naeg-sas-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            emulator.key("orders").expose_secret(),
            100 * 1024 * 1024
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut answer = [0u8; 12];
    huge.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");

    // The slow ones are closed by the server: the stalled bodies with a 408 in Azure's shape.
    let trickled = tokio::time::timeout(PATIENCE, futures::future::join_all(trickling))
        .await
        .expect("the trickling connections were never closed");
    assert!(
        trickled.iter().all(|a| !a.contains("HTTP/1.1 2")),
        "{trickled:?}"
    );
    let bodies = tokio::time::timeout(
        PATIENCE,
        futures::future::join_all(stalled.into_iter().map(until_closed)),
    )
    .await
    .expect("the stalled bodies were never answered");
    for answer in &bodies {
        assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
        assert!(answer.contains(r#""code":"RequestTimeout""#), "{answer}");
    }
    let page: serde_json::Value =
        eventually_async("the 20 publishes indexed", PATIENCE, async || {
            let page: serde_json::Value = emulator.get_json("/dashboard/api/events").await;
            (page["total"] == 20).then_some(page)
        })
        .await;
    assert_eq!(
        page["total"], 20,
        "only the publishes that finished were accepted"
    );
}

/// The smallest publish buffer the setting allows (1 MiB) still takes a body of undeclared
/// length (chunked), which may be as large as a request can be: it once asked the buffer for
/// 1 KiB more than that and waited for ever.
#[tokio::test]
async fn the_smallest_publish_buffer_takes_a_body_of_undeclared_length() {
    let emulator = Setup::new(file(vec![topic("orders", vec![])]))
        .publish_buffer(1024 * 1024)
        .start()
        .await;
    let address = format!("127.0.0.1:{}", emulator.port);
    let body = json!([event("chunked-1", "NewOrder", json!({"orderId": 1}))]).to_string();
    let mut stream = TcpStream::connect(&address).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /orders/api/events?api-version=2018-01-01 HTTP/1.1\r\nHost: {address}\r\naeg-sas-key: {}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
                emulator.key("orders").expose_secret(),
                body.len()
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let answer = tokio::time::timeout(PATIENCE, until_closed(stream))
        .await
        .expect("the publish was never answered");
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// The connection cap: with all its connections held, the next client waits in the backlog and
/// is served as soon as one closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_connection_cap_a_client_waits_until_one_closes() {
    let limits = HttpLimits {
        header_timeout: Duration::from_secs(60),
        body_timeout: Duration::from_secs(60),
        max_connections: 2,
    };
    let emulator = Setup::new(file(vec![topic("orders", vec![])]))
        .http(limits)
        .start()
        .await;
    let address = format!("127.0.0.1:{}", emulator.port);
    let first = TcpStream::connect(&address).await.unwrap();
    let _second = TcpStream::connect(&address).await.unwrap();
    let waiting = tokio::spawn({
        let url = format!("{}/health", emulator.base);
        async move { reqwest::get(url).await.map(|r| r.status().as_u16()) }
    });
    // Held off while both are open (the answer would come in milliseconds otherwise).
    let held = tokio::time::timeout(Duration::from_millis(300), async {
        while !waiting.is_finished() {
            tokio::task::yield_now().await;
        }
    })
    .await;
    assert!(
        held.is_err(),
        "a third connection was served past a cap of 2"
    );
    drop(first);
    eventually_async("the waiting request", PATIENCE, async || {
        waiting.is_finished().then_some(())
    })
    .await;
    assert_eq!(waiting.await.unwrap().unwrap(), 200);
}
