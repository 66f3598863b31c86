//! How idempotency runs a call: claim the key, replay a completed result or refuse, else run
//! the call and keep its success (a failure, or a fallback's value, frees the key).

use std::future::Future;

use super::{Claim, IdempotencyBackend, IdempotencyOptions, Idempotent, Refusal};

/// Why a call under idempotency did not return a value of its own or a replay.
pub(crate) enum Stopped<E> {
    /// The idempotency step refused (unavailable store, bad request, in flight, mismatch).
    Refused(Refusal),
    /// The call ran and failed.
    Failed(E),
}

/// Runs `call` once per `"{call_key}/{the request's idempotency key}"`: `call` returns its
/// result and whether a fallback made it (a fallback's value is not stored).
pub(crate) async fn once<T, E, Fut>(
    store: &dyn IdempotencyBackend,
    call_key: &str,
    request: &serde_json::Value,
    options: &IdempotencyOptions,
    call: impl FnOnce() -> Fut,
) -> Result<Idempotent<T>, Stopped<E>>
where
    T: serde::Serialize + serde::de::DeserializeOwned,
    Fut: Future<Output = (Result<T, E>, bool)>,
{
    // Scoped by the call site's key: one idempotency key names one operation's call.
    let named = super::key_of(request, &options.key).map_err(Stopped::Refused)?;
    let id = format!("{call_key}/{named}");
    let fingerprint = super::fingerprint(request);
    let claim = store
        .claim(&id, &fingerprint, options)
        .await
        .map_err(|e| Stopped::Refused(Refusal::Unavailable(e)))?;
    let hold = match claim {
        Claim::New(hold) => hold,
        Claim::Completed(stored) => {
            let value = serde_json::from_slice(&stored).map_err(|e| {
                Stopped::Refused(Refusal::Invalid(format!("the stored result: {e}")))
            })?;
            return Ok(Idempotent {
                value,
                replayed: true,
            });
        }
        Claim::InFlight => return Err(Stopped::Refused(Refusal::InFlight)),
        Claim::Mismatch => return Err(Stopped::Refused(Refusal::Mismatch)),
    };
    match call().await {
        (Ok(value), false) => {
            match serde_json::to_vec(&value) {
                Ok(bytes) => {
                    let _ = hold.complete(bytes).await;
                }
                Err(_) => hold.abandon().await,
            }
            Ok(Idempotent {
                value,
                replayed: false,
            })
        }
        (Ok(value), true) => {
            hold.abandon().await;
            Ok(Idempotent {
                value,
                replayed: false,
            })
        }
        (Err(e), _) => {
            hold.abandon().await;
            Err(Stopped::Failed(e))
        }
    }
}
