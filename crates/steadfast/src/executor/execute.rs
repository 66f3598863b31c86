//! A call's plan run in full: its classifier, its chain of custom policies and its
//! observers around the attempts.

use std::future::Future;
use std::sync::atomic::AtomicU32;

use super::Inner;
use super::bind::Bound;
use crate::chain::{self, Properties};
use crate::classify::{Classifier, FromPolicy};
use crate::error::Error;
use crate::key::Key;
use crate::observe::{Both, PolicyEvent, Probe};
use crate::retry::{ExhaustedHook, NoHook, RetryHook};

impl Inner {
    /// A call under `bound` with nothing but the plan: its classifier, chain and observers.
    pub(super) async fn run_plan<F, Fut, T, E>(
        &self,
        key: &Key,
        bound: &Bound,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
    {
        let plan = &*bound.plan;
        let report = |type_name: &'static str| {
            self.report(&PolicyEvent::Unreadable {
                key: key.as_str(),
                classifier: plan.classifier().name(),
                type_name,
            })
        };
        let classifier = FromPolicy {
            policy: plan.classifier(),
            report: self.observed().then_some(&report as _),
        };
        let attempts = AtomicU32::new(0);
        self.execute(
            key,
            bound,
            Properties::default(),
            classifier,
            NoHook,
            NoHook,
            NoHook,
            &attempts,
            op,
        )
        .await
    }

    /// The attempts under `bound`: observers (and tracing) when there are any, inside the
    /// plan's chain when it has one; `attempts` counts them as they start.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn execute<F, Fut, T, E, K, R, X, P>(
        &self,
        key: &Key,
        bound: &Bound,
        properties: Properties,
        classifier: K,
        on_retry: R,
        on_exhausted: X,
        probe: P,
        attempts: &AtomicU32,
        op: F,
    ) -> Result<T, Error<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
        T: 'static,
        E: 'static,
        K: Classifier<T, E>,
        R: RetryHook<T, E>,
        X: ExhaustedHook<T, E>,
        P: Probe,
    {
        let plan = &*bound.plan;
        let observed = self.observed();
        let deadline = plan.retry().deadline_from_now();
        let call = async {
            let call = plan
                .retry()
                .call(op)
                .classify(classifier)
                .with_hooks(on_retry, on_exhausted)
                .with_guards(bound.guards());
            let count = Both(probe, chain::CountAttempts(attempts));
            if observed {
                call.with_probe(Both(self.observers(key), count))
                    .run()
                    .await
            } else {
                call.with_probe(count).run().await
            }
        };
        if plan.policies().is_empty() {
            call.await
        } else {
            chain::run(plan.policies(), key, deadline, properties, attempts, call).await
        }
    }
}
