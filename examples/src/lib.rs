//! Runnable examples for steadfast; see the `[[example]]` targets.
