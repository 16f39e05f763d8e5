//! smartpro-sim's integration tests: determinism, the PyBaMM reference, serve, studies.
//!
//! One integration-test binary per crate (issue 21 item 9): each former
//! `tests/*.rs` file is a module here, so the crate's dependencies link once
//! rather than once per file. Run one module with
//! `cargo test -p smartpro-sim --test it MODULE::`.

mod closed_stdout;
mod determinism;
mod issue_4_pybamm_reference;
mod serve_common;
mod serve_faults;
mod serve_pty;
mod serve_tcp;
mod sweep_study;

/// One binary runs every test file's tests side by side; the serve tests time replies on a pty
/// or TCP and must not share the two cores with the CPU-heavy ones (the determinism runs, the
/// PyBaMM reference, the studies), as they did not when each file was its own binary. Serve
/// tests hold [`machine::timing`] (shared among them, and re-entrant: a test may start two
/// servers), heavy tests [`machine::exclusive`].
pub mod machine {
    use std::sync::{Condvar, Mutex, MutexGuard};

    /// (timing holders, an exclusive holder).
    static STATE: Mutex<(usize, bool)> = Mutex::new((0, false));
    static CHANGED: Condvar = Condvar::new();

    fn state() -> MutexGuard<'static, (usize, bool)> {
        STATE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A timing test's share; others like it may hold one too.
    #[derive(Debug)]
    pub struct Timing(());

    /// A heavy test's whole machine.
    #[derive(Debug)]
    pub struct Exclusive(());

    pub fn timing() -> Timing {
        let mut s = state();
        while s.1 {
            s = CHANGED.wait(s).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        s.0 += 1;
        Timing(())
    }

    pub fn exclusive() -> Exclusive {
        let mut s = state();
        while s.1 || s.0 > 0 {
            s = CHANGED.wait(s).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
        s.1 = true;
        Exclusive(())
    }

    impl Drop for Timing {
        fn drop(&mut self) {
            state().0 -= 1;
            CHANGED.notify_all();
        }
    }

    impl Drop for Exclusive {
        fn drop(&mut self) {
            state().1 = false;
            CHANGED.notify_all();
        }
    }
}
