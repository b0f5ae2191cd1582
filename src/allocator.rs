//! The process's allocator: mimalloc; in the commands that ingest, returning freed memory
//! to the system at once, and serving SQLite's allocations too.
//!
//! The collector allocates and frees a few dozen strings per span. Measured with perf on
//! the ingest benchmark at about 50k spans/s, glibc's allocator took a fifth of the
//! collector's CPU (`malloc`, `_int_free`, `malloc_consolidate`). mimalloc is much cheaper,
//! but by default keeps freed pages for a while: peak RSS rose from 110 to 143 MiB at 16
//! clients, so the collector purges freed memory immediately instead. Readers (`flow`,
//! `flows`, the dashboard) keep the default: purging at once made them fault the same pages
//! back in on every query.

use std::os::raw::{c_int, c_long, c_void};

use rusqlite::ffi;

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

/// Has SQLite allocate through mimalloc (with the purge above) instead of the C library's
/// `malloc`. Called by `main` for the commands that ingest, before anything opens a store;
/// later, SQLite refuses (with the error code returned) and keeps its allocator.
///
/// glibc gives each thread that allocates its own arena and keeps what is freed there. The
/// flow rules' SQLite connections work on whichever blocking thread is free, and on the
/// ingest bench, at 10k spans/s, the collector's glibc arenas held about 20 MiB more with
/// the rules on than off (docs/DECISIONS.md).
#[allow(unsafe_code)]
pub fn sqlite_allocates_here() -> Result<(), c_int> {
    let methods = ffi::sqlite3_mem_methods {
        xMalloc: Some(sqlite_malloc),
        xFree: Some(sqlite_free),
        xRealloc: Some(sqlite_realloc),
        xSize: Some(sqlite_size),
        xRoundup: Some(sqlite_roundup),
        xInit: Some(sqlite_init),
        xShutdown: Some(sqlite_shutdown),
        pAppData: std::ptr::null_mut(),
    };
    // SAFETY: SQLite copies the methods, and takes them only while it is not initialised
    // (otherwise it answers SQLITE_MISUSE and changes nothing). Every method below is safe
    // for any thread, as SQLite requires.
    match unsafe { ffi::sqlite3_config(ffi::SQLITE_CONFIG_MALLOC, &raw const methods) } {
        ffi::SQLITE_OK => Ok(()),
        code => Err(code),
    }
}

/// A size SQLite passed, as mimalloc takes it (SQLite never asks for less than one byte).
fn bytes(size: c_int) -> usize {
    usize::try_from(size).unwrap_or(0)
}

/// A size mimalloc reports, as SQLite takes it (SQLite allocates under 2 GiB at a time).
fn sqlite_int(size: usize) -> c_int {
    c_int::try_from(size).unwrap_or(c_int::MAX)
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_malloc(size: c_int) -> *mut c_void {
    // SAFETY: any size may be asked of mimalloc; null is SQLite's out-of-memory answer too.
    unsafe { libmimalloc_sys::mi_malloc(bytes(size)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_free(pointer: *mut c_void) {
    // SAFETY: SQLite frees only what `sqlite_malloc` or `sqlite_realloc` returned.
    unsafe { libmimalloc_sys::mi_free(pointer) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_realloc(pointer: *mut c_void, size: c_int) -> *mut c_void {
    // SAFETY: as `sqlite_free`; on failure mimalloc leaves the block as it was, as SQLite
    // expects.
    unsafe { libmimalloc_sys::mi_realloc(pointer, bytes(size)) }
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_size(pointer: *mut c_void) -> c_int {
    // SAFETY: as `sqlite_free`.
    sqlite_int(unsafe { libmimalloc_sys::mi_usable_size(pointer) })
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_roundup(size: c_int) -> c_int {
    // SAFETY: a pure size computation.
    sqlite_int(unsafe { libmimalloc_sys::mi_good_size(bytes(size)) })
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_init(_: *mut c_void) -> c_int {
    ffi::SQLITE_OK
}

#[allow(unsafe_code)]
unsafe extern "C" fn sqlite_shutdown(_: *mut c_void) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Set in the child process the test runs itself in.
    const CHILD: &str = "CAUSEWAY_ALLOCATOR_TEST_CHILD";

    /// SQLite takes its allocator once per process, before anything else uses it, so the
    /// test runs itself again in a process of its own (other tests of this binary may have
    /// opened stores in this one already).
    #[test]
    #[allow(unsafe_code)]
    fn sqlite_allocates_through_mimalloc() {
        if std::env::var_os(CHILD).is_none() {
            let status = std::process::Command::new(std::env::current_exe().unwrap())
                .args([
                    "--exact",
                    "allocator::tests::sqlite_allocates_through_mimalloc",
                ])
                .env(CHILD, "1")
                .status()
                .unwrap();
            assert!(status.success(), "the test in its own process: {status}");
            return;
        }
        assert_eq!(sqlite_allocates_here(), Ok(()));
        let connection = rusqlite::Connection::open_in_memory().unwrap();
        connection
            .execute_batch(
                "CREATE TABLE t (n INTEGER, s TEXT); \
                 WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 20000) \
                 INSERT INTO t SELECT n, printf('row %d', n) FROM c;",
            )
            .unwrap();
        let total: i64 = connection
            .query_row("SELECT sum(length(s)) FROM t", [], |row| row.get(0))
            .unwrap();
        assert!(total > 100_000);
        // SAFETY: a block from SQLite's allocator, given back to it.
        unsafe {
            let block = ffi::sqlite3_malloc(1000);
            assert!(!block.is_null());
            assert!(
                libmimalloc_sys::mi_is_in_heap_region(block),
                "SQLite's block comes from mimalloc"
            );
            assert!(ffi::sqlite3_msize(block) >= 1000);
            ffi::sqlite3_free(block);
        }
        assert_eq!(
            sqlite_allocates_here(),
            Err(ffi::SQLITE_MISUSE),
            "too late once SQLite is in use"
        );
    }
}
