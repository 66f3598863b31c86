//! Policies polled over HTTP from a real local server: ETags and 304s, last-known-good while
//! the server is down, the on-disk cache across a restart, and safe defaults with nothing.

mod support;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use steadfast::policy::HttpProvider;
use steadfast::{Executor, Retry};
use support::{PolicyEvents, next_event};

/// The policy server: one document with its ETag, counting 200s and 304s.
#[derive(Clone, Default)]
struct Server {
    doc: Arc<Mutex<(String, String)>>,
    full: Arc<AtomicU32>,
    not_modified: Arc<AtomicU32>,
}

impl Server {
    fn set(&self, etag: &str, body: &str) {
        *self.doc.lock().unwrap() = (format!("\"{etag}\""), body.to_owned());
    }

    async fn start(&self) -> (SocketAddr, tokio::task::JoinHandle<()>) {
        let state = self.clone();
        let app = axum::Router::new().route(
            "/policies",
            axum::routing::get(move |headers: HeaderMap| {
                let state = state.clone();
                async move {
                    let (etag, body) = state.doc.lock().unwrap().clone();
                    if headers
                        .get(header::IF_NONE_MATCH)
                        .and_then(|v| v.to_str().ok())
                        == Some(etag.as_str())
                    {
                        state.not_modified.fetch_add(1, Ordering::Relaxed);
                        return StatusCode::NOT_MODIFIED.into_response();
                    }
                    state.full.fetch_add(1, Ordering::Relaxed);
                    (
                        [
                            (header::ETAG, etag),
                            (header::CONTENT_TYPE, "application/toml".to_owned()),
                        ],
                        body,
                    )
                        .into_response()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        (
            addr,
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() }),
        )
    }
}

fn attempts(executor: &Executor, key: &str) -> Option<u32> {
    executor.plan(key).unwrap().retry().max_attempts()
}

fn provider(url: &str, cache: &std::path::Path) -> HttpProvider {
    HttpProvider::new(url)
        .interval(Duration::from_millis(50))
        .timeout(Duration::from_secs(2))
        .cache(cache)
}

/// An address nothing listens on.
async fn dead_address() -> SocketAddr {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_with_etags_keeps_last_known_good_and_restarts_from_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("policies.cache.json");
    let server = Server::default();
    server.set("v1", "[policies.\"svc.*\"]\nretry = { max_attempts = 2 }\n");
    let (addr, serving) = server.start().await;
    let url = format!("http://{addr}/policies");

    let (observer, mut events) = PolicyEvents::new();
    let executor = Executor::builder().observer(observer).build();
    let following = executor.follow(provider(&url, &cache)).await;
    assert_eq!(next_event(&mut events).await, format!("applied {url}"));
    assert_eq!(attempts(&executor, "svc.Get"), Some(2));

    // Unchanged: 304s, nothing parsed, nothing applied again.
    while server.not_modified.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(server.full.load(Ordering::Relaxed), 1);
    assert!(
        events.try_recv().is_err(),
        "an event for an unchanged document"
    );

    // Changed: applied on the next poll.
    server.set("v2", "[policies.\"svc.*\"]\nretry = { max_attempts = 5 }\n");
    assert_eq!(next_event(&mut events).await, format!("applied {url}"));
    assert_eq!(attempts(&executor, "svc.Get"), Some(5));

    // An invalid document is refused; the last good one stays.
    server.set(
        "v3",
        "[policies.\"svc.*\"]\nretry = { max_attempts = -1 }\n",
    );
    let event = next_event(&mut events).await;
    assert!(
        event.starts_with(&format!(
            "rejected {url}: {url}:2:26: policies.\"svc.*\".retry.max_attempts: invalid value"
        )),
        "{event}"
    );
    assert_eq!(attempts(&executor, "svc.Get"), Some(5));
    server.set("v4", "[policies.\"svc.*\"]\nretry = { max_attempts = 7 }\n");
    assert_eq!(next_event(&mut events).await, format!("applied {url}"));

    // The server goes down: reported, and the last good policies stay.
    serving.abort();
    let _ = serving.await;
    let event = next_event(&mut events).await;
    assert!(
        event.starts_with(&format!("unavailable {url}: cannot reach {url}")),
        "{event}"
    );
    assert_eq!(attempts(&executor, "svc.Get"), Some(7));
    drop(following);

    // A restart while the server is still down: the cached copy, then the outage reported.
    let (observer, mut events) = PolicyEvents::new();
    let restarted = Executor::builder().observer(observer).build();
    let _following = restarted.follow(provider(&url, &cache)).await;
    assert_eq!(attempts(&restarted, "svc.Get"), Some(7));
    assert_eq!(
        next_event(&mut events).await,
        format!("applied {url} (cached)")
    );
    assert!(
        next_event(&mut events)
            .await
            .starts_with(&format!("unavailable {url}"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_anywhere_means_safe_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}/policies", dead_address().await);
    let (observer, mut events) = PolicyEvents::new();
    let executor = Executor::builder().observer(observer).build();
    let _following = executor
        .follow(provider(&url, &dir.path().join("never-written.json")))
        .await;
    assert!(
        next_event(&mut events)
            .await
            .starts_with(&format!("unavailable {url}"))
    );
    assert_eq!(executor.plan("svc.Get").unwrap().retry(), &Retry::default());
    assert!(!dir.path().join("never-written.json").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remote_layer_overrides_a_file_table_by_table() {
    use steadfast::policy::{FileProvider, Layered, PolicyDocument, StaticProvider, TableSpec};
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("policies.toml");
    std::fs::write(&file, "[policies.\"svc.*\"]\nretry = { max_attempts = 4 }\n\n[policies.\"db.*\"]\nretry = { max_attempts = 6 }\n").unwrap();
    let server = Server::default();
    server.set("r1", "[policies.\"svc.*\"]\nretry = { max_attempts = 9 }\n");
    let (addr, _serving) = server.start().await;
    let code = PolicyDocument::new()
        .with(
            "cache.*",
            TableSpec::new().retry(Retry::immediate().max_attempts(2)),
        )
        .with(
            "db.*",
            TableSpec::new().retry(Retry::immediate().max_attempts(1)),
        );

    let executor = Executor::builder().build();
    let _following = executor
        .follow(
            Layered::new()
                .layer(provider(
                    &format!("http://{addr}/policies"),
                    &dir.path().join("c.json"),
                ))
                .layer(FileProvider::new(&file))
                .layer(StaticProvider::new(code)),
        )
        .await;
    assert_eq!(attempts(&executor, "svc.Get"), Some(9)); // remote over file
    assert_eq!(attempts(&executor, "db.Query"), Some(6)); // file over code
    assert_eq!(attempts(&executor, "cache.Get"), Some(2)); // code alone
    assert_eq!(attempts(&executor, "other.Get"), Some(3)); // nothing: defaults
}
