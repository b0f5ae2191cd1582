//! The process's allocator: mimalloc; in the commands that ingest, returning freed memory
//! to the system at once.
//!
//! The collector allocates and frees a few dozen strings per span. Measured with perf on
//! the ingest benchmark at about 50k spans/s, glibc's allocator took a fifth of the
//! collector's CPU (`malloc`, `_int_free`, `malloc_consolidate`). mimalloc is much cheaper,
//! but by default keeps freed pages for a while: peak RSS rose from 110 to 143 MiB at 16
//! clients, so the collector purges freed memory immediately instead. Readers (`flow`,
//! `flows`, the dashboard) keep the default: purging at once made them fault the same pages
//! back in on every query.

use std::os::raw::{c_int, c_long};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// `mi_option_purge_delay` in mimalloc's `mi_option_e` (mimalloc.h, v3, bundled by
/// libmimalloc-sys 0.1.49, which names no constant for it): milliseconds before freed
/// memory is returned; 0 is at once. Checked on the ingest benchmark: with this call the
/// collector's peak RSS (110.8 MiB) matched a run with `MIMALLOC_PURGE_DELAY=0` set in the
/// environment (109.9 MiB), against 143.2 MiB without either.
const MI_OPTION_PURGE_DELAY: c_int = 15;

/// Asks mimalloc to return freed memory to the system at once. Called by `main` for the
/// commands that ingest (collector, demo), before they start.
#[allow(unsafe_code)]
pub fn purge_freed_memory_at_once() {
    // SAFETY: `mi_option_set` only stores an integer option; any option number and value
    // are accepted, and it may be called at any time from any thread.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0 as c_long) };
}
