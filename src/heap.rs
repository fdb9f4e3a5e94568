//! How the C allocator gives memory back, in the long-running daemon.
//!
//! glibc raises its mmap threshold to the size of each large block freed,
//! up to 32 MiB, so after the first large stream segment the later ones
//! are carved from arenas that keep their peak, one per thread that
//! touched them: under a write flood `run --pitr` peaked at 116 MiB, and
//! at 57 MiB with a fixed 8 MiB threshold (BENCHMARKS.md, "Point-in-time
//! recovery"). Blocks of 8 MiB and more then get mappings of their own,
//! returned to the system when freed; the pipelines' 4 MiB frames and
//! 120 KiB chunks stay in the arenas. One-shot commands keep glibc's
//! defaults: a fixed threshold slowed restore and verify in A/B runs.

/// Blocks at least this large get a mapping of their own.
const MMAP_THRESHOLD: i32 = 8 << 20;

/// Sets the allocator's policy for a long-running process; call before
/// any thread starts.
pub fn configure_for_daemon() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before
    // other threads exist. A refusal (0) leaves the defaults, which work.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
