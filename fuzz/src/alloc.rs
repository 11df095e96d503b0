//! Measuring what a target allocates, so "a length field claiming 4 GB
//! must not allocate 4 GB" is a checked property rather than a hope.
//!
//! [`Tracking`] wraps the system allocator and keeps, per thread, the bytes
//! live now and the most live at once since [`measure`] began. A binary
//! that wants the check installs it (`#[global_allocator]`: the stable
//! driver's test and every libFuzzer target do); without it [`measure`]
//! reports 0 and the budgets pass trivially. Per thread, because the test
//! harness runs targets on several threads at once, and every target runs
//! its code on the calling thread.
//!
//! This is the one `unsafe` in the fuzz crate (the product crates have
//! none): a `GlobalAlloc` impl cannot be written without it. It only
//! forwards to [`System`] and counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting live bytes per thread.
pub struct Tracking;

thread_local! {
    // `const` initialisers of plain `Cell`s: no lazy init, no destructor,
    // so the allocator can touch them without allocating itself.
    static ACTIVE: Cell<bool> = const { Cell::new(false) };
    static LIVE: Cell<isize> = const { Cell::new(0) };
    static PEAK: Cell<isize> = const { Cell::new(0) };
}

fn count(delta: isize) {
    let _ = ACTIVE.try_with(|active| {
        if active.get() {
            let live = LIVE.get() + delta;
            LIVE.set(live);
            if live > PEAK.get() {
                PEAK.set(live);
            }
        }
    });
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; the counting touches only
// thread-local `Cell`s and never allocates.
unsafe impl GlobalAlloc for Tracking {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            count(layout.size() as isize);
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        count(-(layout.size() as isize));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            count(new_size as isize - layout.size() as isize);
        }
        p
    }
}

/// Runs `f` and returns its result with the most bytes it had allocated
/// at once (beyond what was live when it started). Measurements do not
/// nest: an inner `measure` ends the outer one's counting.
pub fn measure<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LIVE.set(0);
    PEAK.set(0);
    ACTIVE.set(true);
    let out = f();
    ACTIVE.set(false);
    (out, PEAK.get().max(0) as usize)
}

/// Runs `f` and panics if it had more than `budget` bytes allocated at
/// once: what a hostile length field would show up as.
#[track_caller]
pub fn within<R>(what: &str, budget: usize, f: impl FnOnce() -> R) -> R {
    let (out, peak) = measure(f);
    assert!(
        peak <= budget,
        "{what}: {peak} bytes allocated at once, over the budget of {budget}"
    );
    out
}
