//! Memory stays flat under key churn: a million distinct keys (per tenant, per host) cannot
//! grow the executor without bound. Measured with a counting allocator (bytes in use).

// A global allocator is an `unsafe impl` by definition; this one only counts and forwards.
#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use steadfast::Executor;
use steadfast::policy::Policies;

struct Counting;

static IN_USE: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        IN_USE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: forwards the caller's layout to the system allocator unchanged.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` was allocated by `System` with this layout in `alloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn memory_is_flat_under_key_churn() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap();
    let executor = Executor::with_max_keys(Policies::default(), 1000);
    let churn = |from: usize, to: usize| {
        rt.block_on(async {
            for i in from..to {
                let key = format!("tenant{i}.Get");
                executor
                    .run(&key, || async { Ok::<_, ()>(()) })
                    .await
                    .unwrap();
            }
        })
    };
    let empty = IN_USE.load(Ordering::Relaxed);
    churn(0, 20_000); // fill the cache and let the maps reach their size
    let after_first = IN_USE.load(Ordering::Relaxed);
    let cached = executor.cached_keys().max(1) as isize;
    // What one cached key costs (its entry, plan binding and share of the tables).
    let per_key = (after_first - empty) / cached;
    churn(20_000, 120_000);
    let after_second = IN_USE.load(Ordering::Relaxed);
    // The sweep makes the number of cached keys swing between a few hundred and the cap, so
    // memory in use swings by up to the cap's worth of keys; 100 000 more keys kept would be
    // a hundred times that.
    let growth = after_second - after_first;
    let swing = per_key * 1008;
    assert!(
        growth.abs() <= swing,
        "memory grew by {growth} bytes over 100 000 new keys ({after_first} -> {after_second}); \
         the cache's swing is {swing} ({per_key} bytes per key)"
    );
    assert!(executor.cached_keys() <= 1008);
}
