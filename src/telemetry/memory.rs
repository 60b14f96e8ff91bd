//! Giving freed memory back to the system. glibc's malloc returns a freed block to the kernel
//! only when it lies at the top of its heap; the pages of blocks freed below a live one stay
//! resident, so a connection that held 35 MiB of READ replies left the process 35 MiB larger
//! after it had gone. `malloc_trim(0)` returns the free pages of every arena. It walks and
//! locks each arena in turn, so it runs on a blocking thread, one at a time, and only after a
//! connection that held a lot (callers decide what "a lot" is).

use std::sync::atomic::{AtomicBool, Ordering};

/// A trim is running (or queued on the blocking pool).
static RUNNING: AtomicBool = AtomicBool::new(false);
/// Another release was asked for while one ran: the running trim goes round once more.
static AGAIN: AtomicBool = AtomicBool::new(false);

/// Asks the allocator to return the memory it keeps free, soon and off the caller's thread.
/// Requests made while a trim runs are folded into one more trim: at most one thread is ever
/// busy with it, however many connections end at once.
pub fn release_freed_memory() {
    AGAIN.store(true, Ordering::SeqCst);
    if RUNNING.swap(true, Ordering::SeqCst) {
        return;
    }
    let work = || {
        loop {
            while AGAIN.swap(false, Ordering::SeqCst) {
                let released = trim();
                tracing::debug!(released, "returned freed heap pages to the system");
            }
            RUNNING.store(false, Ordering::SeqCst);
            // A request that came after the last trim but saw RUNNING still set is ours.
            if !AGAIN.load(Ordering::SeqCst) || RUNNING.swap(true, Ordering::SeqCst) {
                break;
            }
        }
    };
    match tokio::runtime::Handle::try_current() {
        Ok(runtime) => {
            runtime.spawn_blocking(work);
        }
        Err(_) => work(),
    }
}

/// Returns whether the allocator gave pages back.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn trim() -> bool {
    // SAFETY: malloc_trim takes no pointers and touches only glibc's own free lists, which it
    // locks arena by arena like any other allocator call.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// Other allocators (musl, macOS, Windows) have no such call and keep less.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn trim() -> bool {
    false
}
