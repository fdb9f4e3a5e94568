//! How the C allocator gives memory back.
//!
//! glibc raises its mmap threshold to the size of each large block freed,
//! up to 32 MiB, so after the first large stream segment the later ones
//! are carved from arenas that keep their peak, one per thread that
//! touched them: under a write flood the archiver peaked at 116 MiB, and
//! at 50 MiB with a fixed threshold (BENCHMARKS.md, "Point-in-time
//! recovery"). A fixed threshold keeps blocks of 1 MiB and more in their
//! own mappings, returned to the system when freed; smaller ones (RDB
//! chunks are 120 KiB) stay in the arenas as before.

/// Blocks at least this large get a mapping of their own.
const MMAP_THRESHOLD: i32 = 1 << 20;

/// Sets the allocator's policy; call before any thread starts.
pub fn configure() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; called before
    // other threads exist. A refusal (0) leaves the defaults, which work.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD);
    }
}
