//! Alert hooks against real receivers: an HTTP server on a loopback socket (payload shape,
//! signature checked with openssl, retry on 503 honouring Retry-After, redirects not
//! followed, no duplicate notifications) and real programs for the exec hook.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use causeway_collector::alerting::delivery::SIGNATURE_HEADER;
use causeway_collector::alerting::hook::deliver;
use causeway_collector::alerting::hook_config::{HookConfig, RawHook};
use causeway_collector::lag::config::{LagConfig, RawRule};
use causeway_collector::lag::service::LagService;
use causeway_storage::now_ns;
use causeway_storage::{LagSample, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::temp_dir;

const SECOND: i64 = 1_000_000_000;
pub(crate) const SECRET: &str = "hook-secret";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// A minimal HTTP/1.1 receiver answering with scripted responses (then 200).
pub(crate) struct Receiver {
    pub(crate) url: String,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    pub(crate) async fn start(script: Vec<&'static str>) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let script = Arc::new(Mutex::new(VecDeque::from(script)));
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let log = Arc::clone(&log);
                let script = Arc::clone(&script);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let (head_end, length) = loop {
                        let read = socket.read(&mut chunk).await.unwrap();
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                            let length = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
                            break (end + 4, length);
                        }
                    };
                    while buffer.len() < head_end + length {
                        let read = socket.read(&mut chunk).await.unwrap();
                        assert!(read > 0, "body cut short");
                        buffer.extend_from_slice(&chunk[..read]);
                    }
                    let head = String::from_utf8_lossy(&buffer[..head_end]).to_string();
                    let headers = head
                        .lines()
                        .skip(1)
                        .filter_map(|l| l.split_once(':'))
                        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
                        .collect();
                    log.lock().unwrap().push(Received {
                        headers,
                        body: buffer[head_end..head_end + length].to_vec(),
                    });
                    let status = script.lock().unwrap().pop_front().unwrap_or("200 OK");
                    let mut response =
                        format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n");
                    if status.starts_with("503") {
                        response.push_str("retry-after: 1\r\n");
                    }
                    if status.starts_with("302") {
                        response.push_str("location: http://127.0.0.1:9/elsewhere\r\n");
                    }
                    response.push_str("\r\n");
                    socket.write_all(response.as_bytes()).await.unwrap();
                });
            }
        });
        Receiver { url, received }
    }

    pub(crate) fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }
}

/// HMAC-SHA256 of `body` computed by openssl, a third-party implementation.
pub(crate) fn openssl_signature(body: &[u8]) -> String {
    let mut child = Command::new("openssl")
        .args(["dgst", "-sha256", "-hmac", SECRET])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("openssl is needed to check signatures");
    child.stdin.take().unwrap().write_all(body).unwrap();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    format!("sha256={}", text.trim().rsplit(' ').next().unwrap())
}

fn stalled(at_ns: i64, committed: i64) -> LagSample {
    LagSample {
        sampled_ns: at_ns,
        consumer_group: "billing".into(),
        topic: "orders".into(),
        partition: 0,
        committed_offset: Some(committed),
        low_watermark: None,
        high_watermark: None,
        lag: Some(10 - committed),
        members: Some(1),
        source: "otlp:billing".into(),
    }
}

/// A lag rule that fires on a stalled `billing` group and resolves at once, told to `hook`,
/// evaluated every 10 s.
fn billing_stalled(hook: RawHook) -> LagConfig {
    LagConfig {
        interval: Some("10s".into()),
        rules: vec![RawRule {
            name: Some("billing-stalled".into()),
            window: Some("30s".into()),
            resolve_after: Some("0s".into()),
            severity: Some("page".into()),
            ..RawRule::default()
        }],
        hooks: vec![hook],
        ..LagConfig::default()
    }
}

/// Runs `service` at `steps` cycles of 10 s from `start`, the group at `committed` each time.
async fn cycles(
    service: &mut LagService,
    store: &Store,
    start: i64,
    steps: std::ops::Range<i64>,
    committed: i64,
) {
    for step in steps {
        let at = start + step * 10 * SECOND;
        store
            .write_lag_samples(&[stalled(at, committed)])
            .await
            .unwrap();
        service.cycle(at).await.unwrap();
    }
}

async fn wait_for(receiver: &Receiver, count: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(15);
    while receiver.received().len() < count && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    receiver.received()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_is_signed_retried_and_never_duplicated() {
    // The first attempt is refused with 503 and Retry-After: 1; the retry succeeds.
    let receiver = Receiver::start(vec!["503 Service Unavailable"]).await;
    let dir = temp_dir();
    let store = Store::open(&dir.path().join("hooks.db")).await.unwrap();
    let config = billing_stalled(RawHook {
        name: Some("oncall".into()),
        kind: Some("webhook".into()),
        url: Some(receiver.url.clone()),
        secret: Some(SECRET.into()),
        retries: Some(2),
        timeout: Some("5s".into()),
        external_url: Some("http://causeway.test".into()),
        ..RawHook::default()
    });
    let mut service = LagService::new(store.clone(), config.validate().unwrap(), None).unwrap();
    let start = now_ns();
    // A group reporting the same offset over the window: STALL, the alert fires.
    cycles(&mut service, &store, start, 0..3, 5).await;
    let started = Instant::now();
    service.finish_deliveries().await;
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "Retry-After: 1 was honoured"
    );
    let got = receiver.received();
    assert_eq!(got.len(), 2, "one refused attempt, one delivered: {got:?}");
    assert_eq!(got[0].body, got[1].body, "the retry sends the same payload");

    let firing = &got[1];
    assert_eq!(firing.header("content-type"), Some("application/json"));
    assert_eq!(
        firing.header(SIGNATURE_HEADER),
        Some(openssl_signature(&firing.body).as_str())
    );
    let body = firing.json();
    assert_eq!(body["version"], "4");
    assert_eq!(body["status"], "firing");
    assert_eq!(body["receiver"], "oncall");
    assert_eq!(body["externalURL"], "http://causeway.test");
    assert_eq!(body["groupLabels"]["alertname"], "billing-stalled");
    assert_eq!(body["commonLabels"]["consumer_group"], "billing");
    assert_eq!(body["commonLabels"]["severity"], "page");
    assert_eq!(body["commonAnnotations"]["state"], "STALL");
    let alert = &body["alerts"][0];
    for key in [
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    ] {
        assert!(!alert[key].is_null(), "alert field {key} missing: {alert}");
    }
    assert_eq!(alert["endsAt"], "0001-01-01T00:00:00Z");
    assert!(
        body["groupKey"]
            .as_str()
            .unwrap()
            .contains("consumer_group=\"billing\"")
    );

    // Still stalled on later cycles: no second notification inside the repeat interval.
    cycles(&mut service, &store, start, 3..5, 5).await;
    service.finish_deliveries().await;
    assert_eq!(receiver.received().len(), 2, "no duplicate while firing");

    // Caught up: exactly one resolved notification.
    cycles(&mut service, &store, start, 5..6, 10).await;
    service.finish_deliveries().await;
    let got = wait_for(&receiver, 3).await;
    assert_eq!(got.len(), 3, "{got:?}");
    let resolved = got[2].json();
    assert_eq!(resolved["status"], "resolved");
    assert_eq!(resolved["alerts"][0]["fingerprint"], alert["fingerprint"]);
    assert_ne!(resolved["alerts"][0]["endsAt"], "0001-01-01T00:00:00Z");
    assert_eq!(
        got[2].header(SIGNATURE_HEADER),
        Some(openssl_signature(&got[2].body).as_str())
    );
    let stored = store.alerts(10).await.unwrap();
    assert_eq!(stored[0].status, "resolved");
    assert!(stored[0].notified_ns.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_taking_the_lease_goes_on_with_the_stored_alert() {
    let receiver = Receiver::start(vec![]).await;
    let dir = temp_dir();
    let store = Store::open(&dir.path().join("takeover.db")).await.unwrap();
    let config = billing_stalled(RawHook {
        name: Some("oncall".into()),
        kind: Some("webhook".into()),
        url: Some(receiver.url.clone()),
        ..RawHook::default()
    });
    let settings = config.validate().unwrap();
    let start = now_ns();
    let mut first = LagService::new(store.clone(), settings.clone(), None).unwrap();
    assert!(
        first.hold_lease().await,
        "an SQLite store's lease is always held"
    );
    cycles(&mut first, &store, start, 0..3, 5).await;
    first.finish_deliveries().await;
    assert_eq!(
        wait_for(&receiver, 1).await.len(),
        1,
        "the alert fired once"
    );
    drop(first);

    // Another service takes the lease: the alert is still firing, and no hook hears of it
    // again inside its repeat interval.
    let mut second = LagService::new(store.clone(), settings, None).unwrap();
    assert!(second.hold_lease().await);
    cycles(&mut second, &store, start, 3..5, 5).await;
    second.finish_deliveries().await;
    assert_eq!(
        receiver.received().len(),
        1,
        "the takeover sent the alert again"
    );

    // Caught up: the new holder sends the resolution of the first one's alert.
    cycles(&mut second, &store, start, 5..6, 10).await;
    second.finish_deliveries().await;
    let got = wait_for(&receiver, 2).await;
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].json()["status"], "resolved");
    assert_eq!(
        got[1].json()["alerts"][0]["fingerprint"],
        got[0].json()["alerts"][0]["fingerprint"]
    );
    let episodes = store.alerts(10).await.unwrap();
    assert_eq!(
        episodes.len(),
        1,
        "one episode across the takeover: {episodes:?}"
    );
    assert_eq!(episodes[0].status, "resolved");
}

pub(crate) fn payload_for_tests() -> causeway_collector::alerting::payload::WebhookPayload {
    use causeway_collector::alerting::alert::{Alert, AlertStatus};
    let alert = Alert {
        fingerprint: "00112233aabbccdd".into(),
        rule: "r".into(),
        labels: [("alertname".to_owned(), "r".to_owned())].into(),
        annotations: Default::default(),
        status: AlertStatus::Firing,
        starts_ns: now_ns(),
        ends_ns: None,
        clear_since_ns: None,
    };
    causeway_collector::alerting::payload::payload(&alert, "hook", "http://x")
}

pub(crate) fn hook(raw: RawHook) -> HookConfig {
    let config = LagConfig {
        hooks: vec![raw],
        ..LagConfig::default()
    };
    config.validate().unwrap().hooks.remove(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_does_not_follow_redirects_or_retry_client_errors() {
    let receiver = Receiver::start(vec!["302 Found", "400 Bad Request"]).await;
    let webhook = hook(RawHook {
        name: Some("redirected".into()),
        kind: Some("webhook".into()),
        url: Some(receiver.url.clone()),
        retries: Some(3),
        ..RawHook::default()
    });
    let error = deliver(&webhook, &payload_for_tests()).await.unwrap_err();
    assert!(
        error.to_string().contains("redirects are not followed"),
        "{error}"
    );
    let error = deliver(&webhook, &payload_for_tests()).await.unwrap_err();
    assert!(error.to_string().contains("400"), "{error}");
    assert_eq!(
        receiver.received().len(),
        2,
        "one request each, no retries, no redirect"
    );
    assert_eq!(
        receiver.received()[0].header(SIGNATURE_HEADER),
        None,
        "no secret, no signature"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_hook_gets_the_json_on_stdin_and_is_killed_on_timeout() {
    let dir = temp_dir();
    let out = dir.path().join("alert.json");
    let writes = hook(RawHook {
        name: Some("script".into()),
        kind: Some("exec".into()),
        command: Some("/bin/sh".into()),
        args: vec![
            "-c".into(),
            "cat > \"$0\"".into(),
            out.display().to_string(),
        ],
        timeout: Some("10s".into()),
        ..RawHook::default()
    });
    deliver(&writes, &payload_for_tests()).await.unwrap();
    let written: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written["status"], "firing");
    assert_eq!(written["alerts"][0]["fingerprint"], "00112233aabbccdd");

    let sleeps = hook(RawHook {
        name: Some("slow".into()),
        kind: Some("exec".into()),
        command: Some("sleep".into()),
        args: vec!["30".into()],
        timeout: Some("300ms".into()),
        ..RawHook::default()
    });
    let started = Instant::now();
    let error = deliver(&sleeps, &payload_for_tests()).await.unwrap_err();
    assert!(
        error.to_string().contains("killed after its timeout"),
        "{error}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "killed, not waited for"
    );

    let fails = hook(RawHook {
        name: Some("fails".into()),
        kind: Some("exec".into()),
        command: Some("false".into()),
        ..RawHook::default()
    });
    let error = deliver(&fails, &payload_for_tests()).await.unwrap_err();
    assert!(error.to_string().contains("exited with"), "{error}");
}
