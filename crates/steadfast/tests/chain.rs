//! The policy chain: request hooks in order, response hooks in reverse; a rejection stops
//! the call before the operation runs; a response hook can turn a failure into success.

use std::sync::{Arc, Mutex};

use steadfast::chain::{Context, Policy, Properties, Registry, Rejection, Response};
use steadfast::observe::Timeline;
use steadfast::policy::{Policies, PolicyError};
use steadfast::{ErrorKind, Executor, Retry};

type Log = Arc<Mutex<Vec<String>>>;

#[derive(Debug)]
struct Recording {
    name: &'static str,
    log: Log,
    reject: bool,
    recover_with: Option<u32>,
}

impl Recording {
    fn new(name: &'static str, log: &Log) -> Self {
        Recording {
            name,
            log: log.clone(),
            reject: false,
            recover_with: None,
        }
    }
}

impl Policy for Recording {
    fn on_request(&self, cx: &mut Context<'_>) -> Result<(), Rejection> {
        self.log
            .lock()
            .unwrap()
            .push(format!("request {} {}", self.name, cx.key()));
        if self.reject {
            return Err(Rejection::new(format!("{} says no", self.name)));
        }
        Ok(())
    }

    fn on_response(&self, _: &mut Context<'_>, response: &mut Response) {
        let seen = match (
            response.is_ok(),
            response.error::<&str>(),
            response.rejection(),
        ) {
            (true, _, _) => "ok".to_string(),
            (false, Some(e), _) => format!("error {e}"),
            (false, None, Some(r)) => format!("rejected {r}"),
            _ => "other".to_string(),
        };
        self.log
            .lock()
            .unwrap()
            .push(format!("response {} {seen}", self.name));
        if let Some(v) = self.recover_with
            && !response.is_ok()
        {
            response.recover(v);
        }
    }
}

fn once() -> Retry {
    Retry::immediate().max_attempts(1).build().unwrap()
}

fn executor(registry: &Registry, names: &[&str]) -> Executor {
    Executor::new(
        Policies::default()
            .with_chain("svc.*", once(), names, registry)
            .unwrap(),
    )
}

#[tokio::test]
async fn request_hooks_in_order_response_hooks_in_reverse() {
    let log = Log::default();
    let registry = Registry::new()
        .register("a", Recording::new("a", &log))
        .register("b", Recording::new("b", &log))
        .register("c", Recording::new("c", &log));
    let executor = executor(&registry, &["a", "b", "c"]);
    let value = executor
        .run("svc.Call", || {
            log.lock().unwrap().push("operation".into());
            async { Ok::<_, &str>(7u32) }
        })
        .await
        .unwrap();
    assert_eq!(value, 7);
    assert_eq!(
        *log.lock().unwrap(),
        [
            "request a svc.Call",
            "request b svc.Call",
            "request c svc.Call",
            "operation",
            "response c ok",
            "response b ok",
            "response a ok",
        ]
    );
}

#[tokio::test]
async fn a_request_side_rejection_stops_the_call_before_the_operation() {
    let log = Log::default();
    let mut b = Recording::new("b", &log);
    b.reject = true;
    let registry = Registry::new()
        .register("a", Recording::new("a", &log))
        .register("b", b)
        .register("c", Recording::new("c", &log));
    let executor = executor(&registry, &["a", "b", "c"]);
    let err = executor
        .run("svc.Call", || {
            log.lock().unwrap().push("operation".into());
            async { Ok::<_, &str>(7u32) }
        })
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Rejected(r) if r.reason() == "b says no"));
    assert_eq!(err.to_string(), "rejected: b says no");
    // c never ran, the operation never ran, and only a (before b) saw the response.
    assert_eq!(
        *log.lock().unwrap(),
        [
            "request a svc.Call",
            "request b svc.Call",
            "response a rejected b says no"
        ]
    );
}

#[tokio::test]
async fn a_response_hook_can_turn_a_failure_into_success() {
    let log = Log::default();
    let mut fallback = Recording::new("fallback", &log);
    fallback.recover_with = Some(42);
    let registry = Registry::new()
        .register("fallback", fallback)
        .register("audit", Recording::new("audit", &log));
    let executor = executor(&registry, &["fallback", "audit"]);
    let value = executor
        .run("svc.Call", || async { Err::<u32, _>("down") })
        .await
        .unwrap();
    assert_eq!(value, 42);
    let log = log.lock().unwrap();
    assert_eq!(
        log[log.len() - 2..],
        ["response audit error down", "response fallback error down"]
    );
}

#[derive(Debug)]
struct Tenant(&'static str);

#[derive(Debug)]
struct Quota;

impl Policy for Quota {
    fn on_request(&self, cx: &mut Context<'_>) -> Result<(), Rejection> {
        match cx.properties().get::<Tenant>() {
            Some(Tenant("over")) => Err(Rejection::new("tenant over quota")),
            _ => Ok(()),
        }
    }
}

#[tokio::test]
async fn properties_reach_the_hooks() {
    let registry = Registry::new().register("quota", Quota);
    let executor = executor(&registry, &["quota"]);
    let mut props = Properties::default();
    props.insert(Tenant("over"));
    let err = executor
        .call("svc.Call", || async { Ok::<_, ()>(1) })
        .properties(props)
        .run()
        .await
        .unwrap_err();
    assert!(matches!(err.kind(), ErrorKind::Rejected(_)));
    let mut props = Properties::default();
    props.insert(Tenant("fine"));
    assert_eq!(
        executor
            .call("svc.Call", || async { Ok::<_, ()>(1) })
            .properties(props)
            .run()
            .await
            .unwrap(),
        1
    );
}

#[test]
fn an_unknown_strategy_is_an_error_when_the_policies_are_built() {
    let err = Policies::default()
        .with_chain("payments.*", once(), &["tenant_aware"], &Registry::new())
        .unwrap_err();
    assert_eq!(
        err,
        PolicyError::UnknownStrategy {
            pattern: "payments.*".into(),
            name: "tenant_aware".into()
        }
    );
}

#[derive(Debug)]
struct Seen(Arc<Mutex<Vec<(u32, bool)>>>);

impl Policy for Seen {
    fn on_request(&self, cx: &mut Context<'_>) -> Result<(), Rejection> {
        self.0
            .lock()
            .unwrap()
            .push((cx.attempts(), cx.deadline().is_some()));
        Ok(())
    }

    fn on_response(&self, cx: &mut Context<'_>, _: &mut Response) {
        self.0
            .lock()
            .unwrap()
            .push((cx.attempts(), cx.deadline().is_some()));
    }
}

#[tokio::test(start_paused = true)]
async fn hooks_see_the_attempts_and_the_deadline() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let registry = Registry::new().register("seen", Seen(seen.clone()));
    let retry = Retry::immediate()
        .max_attempts(3)
        .total_timeout(std::time::Duration::from_secs(5))
        .build()
        .unwrap();
    let executor = Executor::new(
        Policies::default()
            .with_chain("svc.*", retry, &["seen"], &registry)
            .unwrap(),
    );
    let mut n = 0;
    let value = executor
        .run("svc.Call", || {
            n += 1;
            let t = n;
            async move { if t < 3 { Err("busy") } else { Ok(t) } }
        })
        .await
        .unwrap();
    assert_eq!(value, 3);
    assert_eq!(*seen.lock().unwrap(), [(0, true), (3, true)]);
}

#[test]
fn blocking_calls_run_the_chain_too() {
    let log = Log::default();
    let mut gate = Recording::new("gate", &log);
    gate.reject = true;
    let registry = Registry::new().register("gate", gate);
    let gated = executor(&registry, &["gate"]);
    let mut ran = false;
    let err = gated
        .call_blocking("svc.Call", || {
            ran = true;
            Ok::<_, &str>(1u32)
        })
        .run()
        .unwrap_err();
    assert!(
        !ran,
        "a governance policy is never bypassed by a blocking call"
    );
    assert!(matches!(err.kind(), ErrorKind::Rejected(_)));

    let mut fallback = Recording::new("fallback", &log);
    fallback.recover_with = Some(9);
    let registry = Registry::new().register("fallback", fallback);
    let recovering = executor(&registry, &["fallback"]);
    let value = recovering
        .call_blocking("svc.Call", || Err::<u32, _>("down"))
        .run()
        .unwrap();
    assert_eq!(value, 9);
}

#[tokio::test(start_paused = true)]
async fn timelines_run_the_chain_too() {
    let log = Log::default();
    let mut gate = Recording::new("gate", &log);
    gate.reject = true;
    let registry = Registry::new().register("gate", gate);
    let gated = executor(&registry, &["gate"]);
    let mut ran = false;
    let mut timeline = Timeline::default();
    let result = gated
        .call("svc.Call", || {
            ran = true;
            async { Ok::<_, &str>(1u32) }
        })
        .timeline(&mut timeline)
        .run()
        .await;
    assert!(!ran);
    assert!(matches!(
        result.as_ref().map_err(|e| e.kind()),
        Err(ErrorKind::Rejected(_))
    ));
    assert!(timeline.attempts().is_empty());

    let registry = Registry::new().register("audit", Recording::new("audit", &log));
    let audited = executor(&registry, &["audit"]);
    let mut timeline = Timeline::default();
    let result = audited
        .call("svc.Call", || async { Ok::<_, &str>(2u32) })
        .timeline(&mut timeline)
        .run()
        .await;
    assert_eq!(result.unwrap(), 2);
    assert_eq!(timeline.attempts().len(), 1);
}

/// A quota looked up remotely: the request hook awaits (here a 20 ms lookup on the paused
/// clock) before it admits or refuses, with a code beside the message.
#[derive(Debug)]
struct RemoteQuota {
    log: Log,
}

#[derive(Debug, Clone, Copy)]
struct TenantOf(u32);

impl Policy for RemoteQuota {
    fn on_request_async<'a>(
        &'a self,
        cx: &'a mut Context<'_>,
    ) -> Option<steadfast::chain::RequestFuture<'a>> {
        Some(Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let tenant = cx.properties().get::<TenantOf>().map_or(0, |t| t.0);
            self.log
                .lock()
                .unwrap()
                .push(format!("looked up tenant {tenant}"));
            if tenant > 100 {
                return Err(Rejection::with_code(
                    "quota_exceeded",
                    format!("tenant {tenant} is over quota"),
                ));
            }
            Ok(())
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn an_async_request_hook_awaits_before_admitting() {
    let log = Log::default();
    let registry = Registry::new()
        .register("quota", RemoteQuota { log: log.clone() })
        .register("after", Recording::new("after", &log));
    let executor = executor(&registry, &["quota", "after"]);
    let call = |tenant: u32| {
        let mut props = Properties::default();
        props.insert(TenantOf(tenant));
        let log = log.clone();
        let executor = &executor;
        async move {
            executor
                .call("svc.Call", move || {
                    log.lock().unwrap().push("operation".into());
                    async { Ok::<_, &str>(7u32) }
                })
                .properties(props)
                .run()
                .await
        }
    };
    let started = tokio::time::Instant::now();
    assert_eq!(call(7).await.unwrap(), 7);
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(20));
    assert_eq!(
        log.lock().unwrap()[..3],
        ["looked up tenant 7", "request after svc.Call", "operation"]
    );

    log.lock().unwrap().clear();
    let err = call(101).await.unwrap_err();
    let ErrorKind::Rejected(r) = err.kind() else {
        panic!("{err:?}")
    };
    assert_eq!(r.code(), Some("quota_exceeded"));
    assert_eq!(r.reason(), "tenant 101 is over quota");
    assert_eq!(*log.lock().unwrap(), ["looked up tenant 101"]);

    // The blocking mirror drives an awaiting hook on its own thread (one that yields once
    // here: the paused clock does not advance while a blocking call runs).
    #[derive(Debug)]
    struct YieldingRefusal;
    impl Policy for YieldingRefusal {
        fn on_request_async<'a>(
            &'a self,
            _: &'a mut Context<'_>,
        ) -> Option<steadfast::chain::RequestFuture<'a>> {
            let mut yielded = false;
            Some(Box::pin(std::future::poll_fn(move |cx| {
                if yielded {
                    std::task::Poll::Ready(Err(Rejection::with_code("closed", "after a wait")))
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    std::task::Poll::Pending
                }
            })))
        }
    }
    let registry = Registry::new().register("yielding", YieldingRefusal);
    let blocking = crate::executor(&registry, &["yielding"]);
    let err = std::thread::spawn(move || {
        blocking
            .call_blocking("svc.Call", || Ok::<_, &str>(1u32))
            .run()
    })
    .join()
    .unwrap()
    .unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Rejected(r) if r.code() == Some("closed")),
        "{err:?}"
    );
}

/// An audit written to a store after the call: the response hook awaits (a 30 ms write on
/// the paused clock), sees how the call ended and the hooks after it in the chain, and
/// refuses a success it cannot record.
#[derive(Debug)]
struct RemoteAudit {
    log: Log,
}

impl Policy for RemoteAudit {
    fn on_response_async<'a>(
        &'a self,
        cx: &'a mut Context<'_>,
        settled: steadfast::chain::Settled,
    ) -> Option<steadfast::chain::ResponseFuture<'a>> {
        Some(Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
            let tenant = cx.properties().get::<TenantOf>().map_or(0, |t| t.0);
            self.log.lock().unwrap().push(format!(
                "audited tenant {tenant}: ok {} after {} attempts",
                settled.is_ok(),
                cx.attempts()
            ));
            (tenant == 13).then(|| Rejection::with_code("audit_failed", "the audit store refused"))
        }))
    }
}

#[tokio::test(start_paused = true)]
async fn an_async_response_hook_awaits_after_the_call_in_reverse_order() {
    let log = Log::default();
    let registry = Registry::new()
        .register("audit", RemoteAudit { log: log.clone() })
        .register("inner", Recording::new("inner", &log));
    let executor = executor(&registry, &["audit", "inner"]);
    let call = |tenant: u32| {
        let mut props = Properties::default();
        props.insert(TenantOf(tenant));
        let executor = &executor;
        async move {
            executor
                .call("svc.Call", || async { Ok::<_, &str>(5u32) })
                .properties(props)
                .run()
                .await
        }
    };
    let started = tokio::time::Instant::now();
    assert_eq!(call(7).await.unwrap(), 5);
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(30));
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0], "request inner svc.Call");
    assert!(seen[1].starts_with("response inner"), "{seen:?}");
    assert_eq!(seen[2], "audited tenant 7: ok true after 1 attempts");

    log.lock().unwrap().clear();
    let err = call(13).await.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Rejected(r) if r.code() == Some("audit_failed")),
        "{err:?}"
    );

    // A chained call's future is still `Send`: it can be spawned.
    let executor = std::sync::Arc::new(executor);
    let spawned = tokio::spawn({
        let executor = executor.clone();
        async move {
            executor
                .call("svc.Call", || async { Ok::<_, std::io::Error>(9u32) })
                .run()
                .await
        }
    });
    assert_eq!(spawned.await.unwrap().unwrap(), 9);
}
