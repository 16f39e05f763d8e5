//! Support for the integration tests of this workspace's crates (`tests/it/`), which run
//! every former test file's tests in one binary, side by side. Not part of the twin's API.

/// One binary runs a crate's integration tests side by side; tests that time replies on a pty
/// or TCP must not share the two cores with CPU-heavy ones (determinism runs, the PyBaMM
/// reference, studies, fits), as they did not when each test file was its own binary. Timing
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
