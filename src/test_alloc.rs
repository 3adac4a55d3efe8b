//! Unit tests only: a global allocator that counts, per thread, the bytes
//! live on the heap, so a test can weigh a data structure exactly
//! ([`live_bytes`] before and after building it) while other tests
//! allocate on their own threads.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    /// Bytes allocated minus bytes freed by this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// [`System`], counting.
struct Counting;

fn add(n: isize) {
    // `try_with`: the thread's slot may be gone while it exits.
    let _ = LIVE.try_with(|live| live.set(live.get() + n));
}

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged and only adds bookkeeping in a thread-local `Cell` (a const
// initializer without a destructor, so touching it never allocates).
// Exercised by every unit test, and weighed by
// `subscriptions::tests::index_memory_per_connection`.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: the caller's contract for `alloc`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        add(-(layout.size() as isize));
        // SAFETY: `ptr` came from `System` with this `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        add(layout.size() as isize);
        // SAFETY: as `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        add(new_size as isize - layout.size() as isize);
        // SAFETY: `ptr` came from `System` with `layout`; the caller
        // guarantees `new_size` is valid.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Heap bytes this thread holds now (allocated minus freed by it).
pub(crate) fn live_bytes() -> isize {
    LIVE.with(Cell::get)
}

#[test]
fn counts_what_this_thread_holds() {
    let before = live_bytes();
    let v: Vec<u8> = Vec::with_capacity(1000);
    assert_eq!(live_bytes() - before, 1000);
    drop(v);
    assert_eq!(live_bytes(), before);
}
