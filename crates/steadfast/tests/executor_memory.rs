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
    churn(0, 20_000); // fill the cache and let the maps reach their size
    let after_first = IN_USE.load(Ordering::Relaxed);
    churn(20_000, 120_000);
    let after_second = IN_USE.load(Ordering::Relaxed);
    // 100 000 more distinct keys: memory in use grows by less than one key's worth per 100.
    let growth = after_second - after_first;
    assert!(
        growth.abs() < 64 * 1024,
        "memory grew by {growth} bytes over 100 000 new keys ({after_first} -> {after_second})"
    );
    assert!(executor.cached_keys() <= 1008);
}
