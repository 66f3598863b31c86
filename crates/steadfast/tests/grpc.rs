//! The tonic layer against a real tonic server on 127.0.0.1, through a generated client with
//! no buffering or status code of its own, on tokio's paused clock.
#![cfg(feature = "tonic")]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use steadfast::classify::PolicyClassifier;
use steadfast::policy::{Plan, Policies};
use steadfast::tonic::{CallSummary, GrpcLayer};
use steadfast::{Executor, Retry};
use tokio::time::Instant;
use tonic::{Code, Request, Response, Status};

#[allow(clippy::all, clippy::pedantic, missing_docs, unreachable_pub)]
#[path = "grpc/echo.v1.rs"]
mod echo;

use echo::echo_client::EchoClient;
use echo::echo_server::{Echo, EchoServer};
use echo::{SayReply, SayRequest};

/// What the server does with one call.
#[derive(Clone)]
enum Answer {
    Ok,
    Fail(Code, Option<&'static str>),
    Hang,
}

/// One call the server got.
#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    previous_attempts: Option<String>,
    timeout: Option<String>,
    text_len: usize,
}

#[derive(Clone, Default)]
struct Server {
    script: Arc<Mutex<VecDeque<Answer>>>,
    log: Arc<Mutex<Vec<Arrival>>>,
}

#[tonic::async_trait]
impl Echo for Server {
    async fn say(&self, request: Request<SayRequest>) -> Result<Response<SayReply>, Status> {
        let header = |name: &str| {
            request
                .metadata()
                .get(name)
                .map(|v| v.to_str().unwrap().to_owned())
        };
        let n = {
            let mut log = self.log.lock().unwrap();
            log.push(Arrival {
                at: Instant::now(),
                previous_attempts: header("grpc-previous-rpc-attempts"),
                timeout: header("grpc-timeout"),
                text_len: request.get_ref().text.len(),
            });
            log.len()
        };
        let answer = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or(Answer::Ok);
        match answer {
            Answer::Ok => Ok(Response::new(SayReply {
                text: request.into_inner().text,
                attempt: n as u32,
            })),
            Answer::Fail(code, pushback) => {
                let mut status = Status::new(code, "scripted");
                if let Some(ms) = pushback {
                    status
                        .metadata_mut()
                        .insert("grpc-retry-pushback-ms", ms.parse().unwrap());
                }
                Err(status)
            }
            Answer::Hang => std::future::pending().await,
        }
    }
}

impl Server {
    fn new(script: impl IntoIterator<Item = Answer>) -> Self {
        let server = Server::default();
        server.script.lock().unwrap().extend(script);
        server
    }

    async fn start(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = tonic::transport::server::TcpIncoming::from(listener);
        let service = EchoServer::new(self.clone());
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(incoming)
                .await
                .unwrap()
        });
        addr
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.log.lock().unwrap().clone()
    }
}

type Client = EchoClient<steadfast::tonic::GrpcService<tonic::transport::Channel>>;

fn client(addr: SocketAddr, layer: GrpcLayer) -> Client {
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    EchoClient::new(tower::ServiceBuilder::new().layer(layer).service(channel))
}

/// Every `echo.v1.*` call: up to 5 attempts 10 ms apart, by the gRPC rules.
fn executor(retry: Retry) -> Executor {
    let plan = Plan::new(retry.clone()).classify(PolicyClassifier::grpc());
    Executor::new(Policies::new(retry).with_plan("echo.v1.*", plan).unwrap())
}

fn five() -> Retry {
    Retry::fixed(Duration::from_millis(10))
        .max_attempts(5)
        .build()
        .unwrap()
}

fn say(text: &str) -> SayRequest {
    SayRequest { text: text.into() }
}

#[tokio::test(start_paused = true)]
async fn unavailable_with_pushback_twice_then_ok_is_three_attempts_300_ms_apart() {
    let server = Server::new([
        Answer::Fail(Code::Unavailable, Some("300")),
        Answer::Fail(Code::Unavailable, Some("300")),
    ]);
    let addr = server.start().await;
    let mut client = client(addr, GrpcLayer::new(executor(five())));

    let reply = client.say(say("hello")).await.unwrap();
    assert_eq!(reply.get_ref().text, "hello");
    assert_eq!(reply.get_ref().attempt, 3);
    let summary = reply.extensions().get::<CallSummary>().copied().unwrap();
    assert_eq!((summary.attempts(), summary.stop()), (3, None));

    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 3);
    for w in arrivals.windows(2) {
        let waited = w[1].at - w[0].at;
        assert!(
            waited >= Duration::from_millis(300) && waited <= Duration::from_millis(320),
            "waited {waited:?}, told 300 ms"
        );
    }
    // gRFC A6: each retry says how many went before it; the body is the same every time.
    let previous: Vec<_> = arrivals
        .iter()
        .map(|a| a.previous_attempts.clone())
        .collect();
    assert_eq!(previous, [None, Some("1".into()), Some("2".into())]);
    assert!(arrivals.iter().all(|a| a.text_len == 5));
}

#[tokio::test(start_paused = true)]
async fn a_negative_pushback_stops_after_one_attempt() {
    let server = Server::new([Answer::Fail(Code::Unavailable, Some("-1"))]);
    let addr = server.start().await;
    let mut client = client(addr, GrpcLayer::new(executor(five())));

    let status = client.say(say("hello")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.arrivals().len(), 1);
    assert_eq!(status.metadata().get("steadfast-stop").unwrap(), "aborted");
}

#[tokio::test(start_paused = true)]
async fn invalid_argument_is_not_retried() {
    let server = Server::new([Answer::Fail(Code::InvalidArgument, None)]);
    let addr = server.start().await;
    let mut client = client(addr, GrpcLayer::new(executor(five())));

    let status = client.say(say("hello")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "scripted");
    assert_eq!(server.arrivals().len(), 1);
    assert_eq!(
        status.metadata().get("steadfast-stop").unwrap(),
        "non_retryable"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hanging_server_under_a_total_timeout_is_deadline_exceeded_on_time() {
    let server = Server::new([Answer::Hang, Answer::Hang]);
    let addr = server.start().await;
    let retry = Retry::fixed(Duration::from_millis(10))
        .max_attempts(5)
        .attempt_timeout(Duration::from_millis(300))
        .total_timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let mut client = client(addr, GrpcLayer::new(executor(retry)));

    let start = Instant::now();
    let status = client.say(say("hello")).await.unwrap_err();
    let took = start.elapsed();
    assert_eq!(status.code(), Code::DeadlineExceeded, "{status:?}");
    assert!(
        took >= Duration::from_millis(450) && took <= Duration::from_millis(550),
        "took {took:?}"
    );
    // The attempt timed out at 300 ms and was retried within the 200 ms left; each attempt
    // told the server its deadline.
    let arrivals = server.arrivals();
    assert_eq!(arrivals.len(), 2);
    let timeouts: Vec<u64> = arrivals
        .iter()
        .map(|a| {
            let t = a.timeout.as_deref().unwrap();
            t.strip_suffix('m').unwrap().parse().unwrap()
        })
        .collect();
    assert!(timeouts[0] <= 500 && timeouts[0] >= 490, "{timeouts:?}");
    assert!(timeouts[1] <= 200 && timeouts[1] >= 150, "{timeouts:?}");
}

#[tokio::test(start_paused = true)]
async fn a_body_over_the_buffer_limit_has_one_attempt_and_says_so() {
    let server = Server::new([Answer::Fail(Code::Unavailable, None)]);
    let addr = server.start().await;
    let layer = GrpcLayer::new(executor(five())).buffer_limits(1024, 1 << 20);
    let mut client = client(addr, layer);

    let status = client.say(say(&"x".repeat(4096))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    let arrivals = server.arrivals();
    assert_eq!(
        arrivals.len(),
        1,
        "a body over the limit is not kept for retries"
    );
    assert_eq!(arrivals[0].text_len, 4096, "the one attempt sent all of it");
    assert_eq!(
        status.metadata().get("steadfast-stop").unwrap(),
        "not_cloneable"
    );

    // Under the limit, the same failure is retried.
    let server = Server::new([Answer::Fail(Code::Unavailable, None)]);
    let addr = server.start().await;
    let layer = GrpcLayer::new(executor(five())).buffer_limits(1024, 1 << 20);
    let reply = client_ok(addr, layer, 512).await;
    assert_eq!(reply, 2);
}

async fn client_ok(addr: SocketAddr, layer: GrpcLayer, len: usize) -> u32 {
    let mut client = client(addr, layer);
    let reply = client.say(say(&"y".repeat(len))).await.unwrap();
    reply.get_ref().attempt
}

#[tokio::test(start_paused = true)]
async fn the_key_is_the_method_unless_the_request_names_one() {
    // `echo.v1.Echo.Say` is covered by `echo.v1.*` (5 attempts); `other.Calls` by the
    // defaults (2 attempts).
    let busy = || Answer::Fail(Code::Unavailable, None);
    let server = Server::new([busy(), busy(), busy(), Answer::Ok, busy(), busy()]);
    let addr = server.start().await;
    let two = Retry::fixed(Duration::from_millis(10))
        .max_attempts(2)
        .build()
        .unwrap();
    let policies = Policies::new(two.clone())
        .with_plan(
            "echo.v1.*",
            Plan::new(five()).classify(PolicyClassifier::grpc()),
        )
        .unwrap();
    let mut client = client(addr, GrpcLayer::new(Executor::new(policies)));

    let reply = client.say(say("a")).await.unwrap();
    assert_eq!(
        reply.get_ref().attempt,
        4,
        "three failures, then the fourth attempt"
    );

    let mut request = Request::new(say("b"));
    request
        .extensions_mut()
        .insert(steadfast::Key::parse("other.Calls").unwrap());
    let status = client.say(request).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(
        server.arrivals().len(),
        6,
        "the named key's plan made 2 attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn no_server_is_unavailable_after_every_attempt() {
    // A port nothing listens on.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut client = client(addr, GrpcLayer::new(executor(five())));
    let status = client.say(say("hello")).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test(start_paused = true)]
async fn calls_over_the_total_buffer_have_one_attempt() {
    let server = Server::new([Answer::Fail(Code::Unavailable, None)]);
    let addr = server.start().await;
    // 1 MiB a call, but only 100 bytes for all calls together.
    let layer = GrpcLayer::new(executor(five())).buffer_limits(1 << 20, 100);
    let mut client = client(addr, layer);
    let status = client.say(say(&"z".repeat(512))).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert_eq!(server.arrivals().len(), 1);
    assert_eq!(
        status.metadata().get("steadfast-stop").unwrap(),
        "not_cloneable"
    );
}

#[tokio::test(start_paused = true)]
async fn a_rate_limited_call_is_resource_exhausted_with_pushback() {
    let server = Server::new([]);
    let addr = server.start().await;
    let plan = Plan::new(five())
        .rate_limit(steadfast::limit::RateLimitOptions::new(
            1,
            Duration::from_secs(2),
        ))
        .unwrap();
    let policies = Policies::new(five()).with_plan("echo.v1.*", plan).unwrap();
    let mut client = client(addr, GrpcLayer::new(Executor::new(policies)));

    client.say(say("first")).await.unwrap();
    let status = client.say(say("second")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert_eq!(
        status.metadata().get("grpc-retry-pushback-ms").unwrap(),
        "2000"
    );
    assert_eq!(server.arrivals().len(), 1, "the refused call never left");
}

/// The error texts an executor's observers were given.
#[derive(Debug, Default)]
struct Texts(Mutex<Vec<String>>);

impl steadfast::observe::Observer for Texts {
    fn on_event(&self, _: &steadfast::Key, _: &steadfast::observe::Event) {}
    fn on_attempt_error(&self, key: &steadfast::Key, error: &dyn std::fmt::Display) {
        self.0.lock().unwrap().push(format!("{key}: {error}"));
    }
}

#[tokio::test(start_paused = true)]
async fn observers_get_each_failed_attempts_status_when_the_layer_allows_it() {
    let texts = Arc::new(Texts::default());
    let retry = five();
    let plan = Plan::new(retry.clone()).classify(PolicyClassifier::grpc());
    let executor = Executor::builder()
        .policies(Policies::new(retry).with_plan("echo.v1.*", plan).unwrap())
        .shared_observer(texts.clone())
        .build();
    let server = Server::new([
        Answer::Fail(Code::Unavailable, None),
        Answer::Fail(Code::InvalidArgument, None),
    ]);
    let addr = server.start().await;
    let layer = GrpcLayer::new(executor.clone()).error_text(true);
    let status = client(addr, layer).say(say("hello")).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        *texts.0.lock().unwrap(),
        [
            "echo.v1.Echo.Say: grpc-status 14: scripted",
            "echo.v1.Echo.Say: grpc-status 3: scripted"
        ]
    );

    // Off by default.
    texts.0.lock().unwrap().clear();
    let server = Server::new([Answer::Fail(Code::Unavailable, None)]);
    let addr = server.start().await;
    client(addr, GrpcLayer::new(executor))
        .say(say("hello"))
        .await
        .unwrap();
    assert!(texts.0.lock().unwrap().is_empty());
}
