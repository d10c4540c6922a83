//! Acknowledged writes survive a crash: a writer saves keys 1, 2, 3, ... one at a time
//! through daprd and records each save answered 204; daprd is SIGKILLed while the writer
//! runs; a fresh daprd on the same store must return every acknowledged key with its value
//! (and the write in flight at the kill either landed whole or not at all).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dapr_testkit::http;
use serde_json::{Value, json};

use super::{Kind, StoreUnderTest, state_url};

per_store!(survives_sigkill:
    sqlite => Sqlite,
    redis => Redis,
    postgresql_v1 => PostgresV1,
    postgresql_v2 => PostgresV2,
);

/// Acknowledged writes to wait for before the kill.
const KILL_AFTER: usize = 300;
/// Upper bound on the writer (it is always stopped by the kill long before).
const MAX_KEYS: u32 = 1_000_000;
const APP_ID: &str = "durable-app";

fn value(index: u32) -> Value {
    json!({"seq": index, "pad": "x".repeat(64)})
}

async fn survives_sigkill(kind: Kind) {
    assert!(kind.durable());
    let store = StoreUnderTest::start(kind).await;
    let daprd = store.sidecar(APP_ID, &[]).await;
    let url = state_url(&daprd, "");
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let writer = {
        let acknowledged = Arc::clone(&acknowledged);
        tokio::spawn(async move {
            for index in 1..=MAX_KEYS {
                let body = json!([{"key": format!("key-{index}"), "value": value(index)}]);
                match http::post_json(&url, &body).await {
                    Ok(response) if response.status.as_u16() == 204 => {
                        acknowledged.lock().unwrap().push(index)
                    }
                    Ok(response) => {
                        return Err(format!(
                            "save {index}: {} {}",
                            response.status,
                            response.text()
                        ));
                    }
                    // The sidecar is gone: the writer stops.
                    Err(_) => return Ok(index),
                }
            }
            Err("the writer was never stopped".to_owned())
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    while acknowledged.lock().unwrap().len() < KILL_AFTER {
        assert!(
            Instant::now() < deadline && !writer.is_finished(),
            "only {} saves acknowledged\n{}",
            acknowledged.lock().unwrap().len(),
            daprd.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    daprd.kill().await.unwrap();
    let in_flight = writer.await.unwrap().unwrap();
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert_eq!(
        acknowledged,
        (1..in_flight).collect::<Vec<_>>(),
        "every save before the kill was acknowledged in order"
    );
    drop(daprd);

    let daprd = store.sidecar(APP_ID, &[]).await;
    for &index in &acknowledged {
        let response = http::get(&state_url(&daprd, &format!("/key-{index}")))
            .await
            .unwrap();
        assert_eq!(
            response.status.as_u16(),
            200,
            "acknowledged key-{index} of {} is lost: {}",
            acknowledged.len(),
            response.text()
        );
        assert_eq!(
            response.json::<Value>().unwrap(),
            value(index),
            "key-{index}"
        );
    }
    let response = http::get(&state_url(&daprd, &format!("/key-{in_flight}")))
        .await
        .unwrap();
    match response.status.as_u16() {
        204 => {}
        200 => assert_eq!(
            response.json::<Value>().unwrap(),
            value(in_flight),
            "the write in flight landed torn"
        ),
        status => panic!("key-{in_flight}: {status} {}", response.text()),
    }
    let after = http::get(&state_url(&daprd, &format!("/key-{}", in_flight + 1)))
        .await
        .unwrap();
    assert_eq!(
        after.status.as_u16(),
        204,
        "a key never sent exists: {}",
        after.text()
    );
}
