//! CPU scheduling of replvault's own threads.
//!
//! A backup runs beside a live Redis, often on the same few cores, and
//! Redis's fork is what sets a backup's pace. Under Linux's default policy a
//! thread that wakes (a socket read, a channel hand-off) may preempt the
//! thread running on its core, Redis's fork included. `SCHED_BATCH` turns
//! that wake-up preemption off while keeping replvault's fair share of the
//! CPU, so a backup waits its turn instead of interrupting Redis.

/// Moves the calling thread, and every thread it starts afterwards, to
/// `SCHED_BATCH`, unless it already runs under a policy other than the
/// default (someone chose one with `chrt`). Returns whether it switched.
#[cfg(target_os = "linux")]
pub fn batch() -> std::io::Result<bool> {
    // SAFETY: plain syscalls on the calling thread; `param` outlives them.
    unsafe {
        if libc::sched_getscheduler(0) != libc::SCHED_OTHER {
            return Ok(false);
        }
        let param = libc::sched_param { sched_priority: 0 };
        if libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(true)
}

/// Elsewhere the default policy stays.
#[cfg(not(target_os = "linux"))]
pub fn batch() -> std::io::Result<bool> {
    Ok(false)
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    #[test]
    fn threads_started_after_the_switch_run_as_batch() {
        // A thread of its own, so the test harness's threads keep theirs.
        let policy = std::thread::spawn(|| {
            assert!(super::batch().unwrap());
            // Already batch: nothing to do the second time.
            assert!(!super::batch().unwrap());
            // SAFETY: a plain syscall about the calling thread.
            std::thread::spawn(|| unsafe { libc::sched_getscheduler(0) })
                .join()
                .unwrap()
        })
        .join()
        .unwrap();
        assert_eq!(policy, libc::SCHED_BATCH);
    }
}
