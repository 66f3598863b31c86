//! A target's record and the gate's rules over it: pure functions of the record, the options
//! it was created with and the time, so every store decides the same way.

use std::time::{Duration, SystemTime};

use crate::clock::{from_ms, to_ms};

use serde::{Deserialize, Serialize};
use steadfast::BackoffOptions;
use steadfast::backoff::BackoffKind;
use steadfast::gate::{Decision, GateOptions, Reason, Target};

/// Longest `last_error` kept, in bytes (longer texts are cut at a character boundary).
pub const MAX_ERROR_LEN: usize = 1000;

/// Everything the gate keeps for one target.
///
/// Times are kept to the millisecond. `policy` is the snapshot of the options in force when
/// the record was created (or last cleared by a success or reset); decisions on this record
/// follow it, so a policy change reaches a target at its next success or reset, and a record
/// can be judged without the policy file (as `steadfast gate show` does).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct GateRecord {
    /// Which target.
    pub target: Target,
    /// Attempts since the last success or reset (the first one included).
    pub attempts: u32,
    /// Retries made inside the current window.
    pub window_retries: u32,
    /// When the current window opened, if one is open (or was, and has not been replaced).
    pub window_start: Option<SystemTime>,
    /// Whether this target's one early retry has been granted.
    pub early_retry_used: bool,
    /// An early retry was asked for and will be granted to the next attempt.
    pub early_requested: bool,
    /// When the last attempt was acquired.
    pub last_attempt_at: Option<SystemTime>,
    /// When an attempt last succeeded.
    pub last_success_at: Option<SystemTime>,
    /// When a denied target may be attempted again, as of the last write (`None`: now, or
    /// never before a reset when exhausted).
    pub next_allowed_at: Option<SystemTime>,
    /// When the early retry was granted.
    pub last_early_granted_at: Option<SystemTime>,
    /// The last failure's text.
    pub last_error: Option<String>,
    /// The options this record is judged by.
    pub policy: GateOptions,
    /// Bumped by every write; a write succeeds only over the version it read.
    pub version: u64,
    /// When the record was created.
    pub created_at: SystemTime,
    /// When it was last written.
    pub updated_at: SystemTime,
}

/// How an allowed attempt is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    First,
    Quota,
    Early,
}

impl GateRecord {
    /// A record with no attempts, judged by `policy`.
    pub fn new(target: Target, policy: GateOptions, now: SystemTime) -> Self {
        GateRecord {
            target,
            attempts: 0,
            window_retries: 0,
            window_start: None,
            early_retry_used: false,
            early_requested: false,
            last_attempt_at: None,
            last_success_at: None,
            next_allowed_at: None,
            last_early_granted_at: None,
            last_error: None,
            policy,
            version: 0,
            created_at: now,
            updated_at: now,
        }
    }

    /// Retries made since the last success or reset.
    pub fn retries(&self) -> u32 {
        self.attempts.saturating_sub(1)
    }

    /// Retries still allowed before the target is exhausted.
    pub fn retries_left(&self) -> u32 {
        self.policy.max_retries.saturating_sub(self.retries())
    }

    /// Whether `max_retries` are used.
    pub fn exhausted(&self) -> bool {
        self.attempts > 0 && self.retries() >= self.policy.max_retries
    }

    /// The end of the current window, if one is open at `now`.
    fn open_window_end(&self, now: SystemTime) -> Option<SystemTime> {
        let end = self.window_start? + self.policy.base_window;
        (now < end).then_some(end)
    }

    /// What the gate would answer at `now` for a plain attempt (`early` false) or an early
    /// retry (`early` true); an early retry asked for earlier counts as `early`.
    pub fn decision(&self, now: SystemTime, early: bool) -> Decision {
        let (decision, _) = self.judge(now, early || self.early_requested);
        decision
    }

    pub(crate) fn judge(&self, now: SystemTime, early: bool) -> (Decision, Option<Kind>) {
        let verdict = |allowed: bool, reason, next: Option<SystemTime>| Decision {
            allowed,
            reason,
            next_allowed_at: next,
            attempts: self.attempts,
            retries_left: self.retries_left(),
        };
        if self.attempts == 0 {
            return (verdict(true, Reason::FirstAttempt, None), Some(Kind::First));
        }
        if self.exhausted() {
            return (verdict(false, Reason::Exhausted, None), None);
        }
        let window_end = self.open_window_end(now);
        // No window open (this retry opens one), or the open one has quota left.
        let Some(window_end) =
            window_end.filter(|_| self.window_retries >= self.policy.base_retries)
        else {
            return match self.spaced_until(now) {
                Some(at) => (verdict(false, Reason::CoolingDown, Some(at)), None),
                None => (verdict(true, Reason::WithinQuota, None), Some(Kind::Quota)),
            };
        };
        if !early {
            return (verdict(false, Reason::CoolingDown, Some(window_end)), None);
        }
        if self.early_retry_used {
            return (
                verdict(false, Reason::EarlyAlreadyUsed, Some(window_end)),
                None,
            );
        }
        // `open_window_end` returned Some, so the window has a start.
        let early_at = self.window_start.unwrap_or(now) + self.policy.early_window;
        if now >= early_at {
            (
                verdict(true, Reason::EarlyRetryGranted, None),
                Some(Kind::Early),
            )
        } else {
            (verdict(false, Reason::CoolingDown, Some(early_at)), None)
        }
    }

    /// When spacing lets the next retry go, if that is after `now`.
    fn spaced_until(&self, now: SystemTime) -> Option<SystemTime> {
        let spacing = self.policy.spacing_before(self.retries().saturating_add(1));
        if spacing.is_zero() {
            // No spacing: a last attempt stamped after `now` (another writer's clock) must
            // not read as a cool-down.
            return None;
        }
        let last = self.last_attempt_at?;
        let at = last + spacing;
        (at > now).then_some(at)
    }

    /// Counts an allowed attempt of `kind` made at `now`.
    pub(crate) fn count_attempt(&mut self, kind: Kind, now: SystemTime) {
        self.attempts = self.attempts.saturating_add(1);
        self.last_attempt_at = Some(now);
        self.early_requested = false;
        match kind {
            Kind::First => {}
            Kind::Quota => {
                if self.open_window_end(now).is_some() {
                    self.window_retries = self.window_retries.saturating_add(1);
                } else {
                    self.window_start = Some(now);
                    self.window_retries = 1;
                }
            }
            Kind::Early => {
                self.early_retry_used = true;
                self.last_early_granted_at = Some(now);
            }
        }
        self.touch(now);
    }

    /// Records a failure at `now`: opens a window if none is open.
    pub(crate) fn fail(&mut self, error: &str, now: SystemTime) {
        if self.open_window_end(now).is_none() {
            self.window_start = Some(now);
            self.window_retries = 0;
        }
        self.last_error = Some(truncate(error, MAX_ERROR_LEN).to_owned());
        self.touch(now);
    }

    /// Clears the counters (a success, or a reset), adopting `policy` from now on.
    pub(crate) fn clear(&mut self, policy: &GateOptions, now: SystemTime, success: bool) {
        self.attempts = 0;
        self.window_retries = 0;
        self.window_start = None;
        self.early_retry_used = false;
        self.early_requested = false;
        self.last_error = None;
        if success {
            self.last_success_at = Some(now);
        }
        self.policy = policy.clone();
        self.touch(now);
    }

    /// Refreshes `next_allowed_at` and `updated_at` after a change at `now`.
    pub(crate) fn touch(&mut self, now: SystemTime) {
        let (decision, _) = self.judge(now, self.early_requested);
        self.next_allowed_at = decision.next_allowed_at;
        self.updated_at = now;
    }
}

fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `t` cut to the millisecond, so what a store returns equals what was written.
pub(crate) fn to_millis_precision(t: SystemTime) -> SystemTime {
    from_ms(to_ms(t))
}

/// The JSON form of a record's policy snapshot.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Snapshot {
    base_retries: u32,
    base_window_ms: u64,
    early_window_ms: u64,
    max_retries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    spacing: Option<Spacing>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Spacing {
    kind: String,
    base_ms: u64,
    max_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    factor: Option<f64>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The options as the JSON kept with a record.
pub(crate) fn policy_to_json(policy: &GateOptions) -> String {
    let spacing = policy.spacing.as_ref().map(|b| {
        let (kind, factor) = match &b.kind {
            BackoffKind::Immediate => ("immediate", None),
            BackoffKind::Fixed => ("fixed", None),
            BackoffKind::Linear => ("linear", None),
            BackoffKind::Exponential { factor } => ("exponential", Some(*factor)),
            BackoffKind::Fibonacci => ("fibonacci", None),
            BackoffKind::Decorrelated => ("decorrelated", None),
            // Refused by `GateOptions::validate`; kept as the schedule's nearest stored form.
            _ => ("fixed", None),
        };
        Spacing {
            kind: kind.to_owned(),
            base_ms: ms(b.base),
            max_ms: ms(b.max),
            factor,
        }
    });
    let snapshot = Snapshot {
        base_retries: policy.base_retries,
        base_window_ms: ms(policy.base_window),
        early_window_ms: ms(policy.early_window),
        max_retries: policy.max_retries,
        spacing,
    };
    serde_json::to_string(&snapshot).unwrap_or_default()
}

/// The options of a record's JSON snapshot.
pub(crate) fn policy_from_json(json: &str) -> Result<GateOptions, String> {
    let s: Snapshot = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut options = GateOptions::default()
        .base_retries(s.base_retries)
        .base_window(Duration::from_millis(s.base_window_ms))
        .early_window(Duration::from_millis(s.early_window_ms))
        .max_retries(s.max_retries);
    if let Some(sp) = s.spacing {
        let base = Duration::from_millis(sp.base_ms);
        let backoff = match sp.kind.as_str() {
            "immediate" => BackoffOptions::immediate(),
            "fixed" => BackoffOptions::fixed(base),
            "linear" => BackoffOptions::linear(base),
            "exponential" => BackoffOptions::exponential(base).factor(sp.factor.unwrap_or(2.0)),
            "fibonacci" => BackoffOptions::fibonacci(base),
            "decorrelated" => BackoffOptions::decorrelated(base),
            other => return Err(format!("spacing.kind: unknown kind {other:?}")),
        };
        options = options.spacing(backoff.max(Duration::from_millis(sp.max_ms)));
    }
    Ok(options)
}
