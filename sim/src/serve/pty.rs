//! A pseudo-terminal made by `serve`, kept usable for every client.
//!
//! The master side carries the RTU line; the slave side (`/dev/pts/N`, what a
//! client opens) stays open in `serve` for the whole session, so that the pty
//! survives clients that come and go (with no slave open, a read on the
//! master fails with EIO).
//!
//! # A pty that behaves like a port on its last close
//!
//! The slave tty, its settings and its flags live as long as the master, that
//! is as long as `serve`. Two things a client leaves behind therefore lock the
//! next client out:
//!
//! * **the exclusive flag.** Clients built on Rust's `serialport`/`tokio-serial`
//!   (and some C tools) open a port exclusively with `ioctl(TIOCEXCL)`: from
//!   then on, opening it again fails with EBUSY for everyone but root. On a real
//!   port the flag goes away with the last close; on a pty a client that exited
//!   without clearing it (killed, `process::exit`; `serialport`'s `Drop` does
//!   clear it) locks every non-root client out.
//! * **the settings.** A Linux pty keeps 8 data bits and no parity whatever is
//!   asked, and (Linux 6.18 here) `tcsetattr` fails with EINVAL when a request
//!   for parity comes with no change of the speed or the other flags. A client
//!   that asks for 19200 8E1 on a fresh pty gets the baud rate stored and the
//!   parity silently dropped; the *next* client asking the same finds 19200
//!   already set, and its open fails (pyserial does; tokio-serial happens not to).
//!
//! So `serve` watches the slave's path with inotify, and when a client closes
//! it, clears the exclusive flag (`TIOCNXCL`) and puts the settings back to
//! those of the fresh pty, through the slave fd it holds: the next client finds
//! the pty as the first one did, a moment (well under a millisecond on an idle
//! machine) after the previous one closed. That is asynchronous: a client that
//! closes and reopens at once (pyserial's `close()` then `open()`) can be
//! faster and still find the old settings. Opens and closes are noted in the
//! frame log.
//!
//! Not while another client still holds the port locked: `serialport`,
//! `tokio-serial` and pyserial (`exclusive=True`) clients take an advisory
//! `flock` on the port as well, and as long as one is held nothing is reset.
//! (inotify cannot count the clients: it merges two opens in a row into one
//! event.) A second client that takes no lock (libmodbus, `cat`) and is still
//! there when another one closes does lose the flag and settings it set; a pty
//! has no baud rate or parity to lose, and two masters on one RTU line do not
//! work anyway.

use std::path::{Path, PathBuf};
use std::sync::mpsc;

use tokio::sync::watch;
use tokio_serial::SerialPort;

use super::line::stopped;
use super::twin::ToTwin;

/// A pty pair for one serve session: the master carries the line, the slave is held open.
pub struct Pty {
    pub(super) master: tokio_serial::SerialStream,
    pub(super) slave: tokio_serial::SerialStream,
    pub(super) path: PathBuf,
    /// The slave's settings when the pty was made (raw mode).
    pub(super) fresh: Option<sys::Settings>,
}

impl std::fmt::Debug for Pty {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pty({})", self.path.display())
    }
}

impl Pty {
    /// Creates a pty pair (the slave in raw mode). Call it inside a Tokio runtime.
    pub fn open() -> Result<Pty, tokio_serial::Error> {
        let (master, slave) = tokio_serial::SerialStream::pair()?;
        let path = PathBuf::from(slave.name().unwrap_or_default());
        let fresh = sys::settings(&slave).ok();
        Ok(Pty { master, slave, path, fresh })
    }

    /// The slave side's path, `/dev/pts/N`: what a client opens.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Until `stop`: when a client closes the slave and no other one holds it
/// locked, clears the exclusive flag and restores `fresh` (see the [module
/// docs](self)). If the path cannot be watched, says so once and does nothing else.
pub(super) async fn keep_reopenable(
    slave: &tokio_serial::SerialStream,
    fresh: Option<&sys::Settings>,
    path: &Path,
    notes: mpsc::SyncSender<ToTwin>,
    mut stop: watch::Receiver<bool>,
) {
    let note = |text: String| {
        super::line::note(&notes, format!("{}: {text}", path.display()));
    };
    let watch = match sys::OpenCloseWatch::new(path) {
        Ok(w) => w,
        Err(e) => {
            eprintln!(
                "warning: {}: cannot watch for clients closing the pty ({e}); a client that leaves it \
                 exclusively locked (TIOCEXCL) keeps other non-root clients out",
                path.display()
            );
            stopped(&mut stop).await;
            return;
        }
    };
    loop {
        let events = tokio::select! {
            _ = stopped(&mut stop) => return,
            e = watch.next() => e,
        };
        let events = match events {
            Ok(e) => e,
            Err(e) => {
                eprintln!("warning: {}: watching the pty failed ({e}); no longer clearing TIOCEXCL", path.display());
                stopped(&mut stop).await;
                return;
            }
        };
        for event in events {
            match event {
                sys::Event::Opened => note("opened by a client".into()),
                // Lost: the kernel dropped events (its queue overflowed); a close may be among them.
                sys::Event::Closed | sys::Event::Lost => {
                    if sys::locked_by_another(slave).unwrap_or(false) {
                        note("closed by a client; another one holds it locked: nothing reset".into());
                        continue;
                    }
                    let mut done = Vec::new();
                    match sys::clear_exclusive(slave) {
                        Ok(true) => done.push("its exclusive flag (TIOCEXCL) cleared".to_owned()),
                        Ok(false) => {}
                        Err(e) => done.push(format!("clearing TIOCEXCL failed: {e}")),
                    }
                    if let Some(fresh) = fresh {
                        match sys::set_settings(slave, fresh) {
                            Ok(()) => done.push("settings reset".to_owned()),
                            Err(e) => done.push(format!("resetting the settings failed: {e}")),
                        }
                    }
                    let done = if done.is_empty() { String::new() } else { format!("; {}", done.join("; ")) };
                    note(format!("closed by a client{done}"));
                }
            }
        }
    }
}

#[cfg(target_os = "linux")]
pub(super) mod sys {
    //! inotify on the slave's path, the exclusive-mode ioctls and the settings.
    #![allow(unsafe_code)]

    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
    use std::path::Path;

    use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
    use nix::sys::termios::{SetArg, tcgetattr, tcsetattr};
    use tokio::io::unix::AsyncFd;

    /// A tty's settings (the plain C struct: nix's `Termios` is not `Sync`).
    pub(crate) type Settings = nix::libc::termios;

    nix::ioctl_none_bad!(tiocnxcl, nix::libc::TIOCNXCL);
    nix::ioctl_read_bad!(tiocgexcl, nix::libc::TIOCGEXCL, nix::libc::c_int);

    fn borrow(f: &impl AsRawFd) -> BorrowedFd<'_> {
        // SAFETY: `f` owns its fd (a tokio-serial stream, a file) and keeps it open for at least as
        // long as it is borrowed, which bounds the returned lifetime.
        unsafe { BorrowedFd::borrow_raw(f.as_raw_fd()) }
    }

    /// Whether the tty behind `f` is in exclusive mode.
    pub(crate) fn is_exclusive(f: &impl AsRawFd) -> nix::Result<bool> {
        let mut set: nix::libc::c_int = 0;
        // SAFETY: TIOCGEXCL (Linux >= 3.8) writes one c_int through its argument, which points to
        // `set`, alive for the call; the fd is open for the call (borrowed from `f`).
        unsafe { tiocgexcl(borrow(f).as_raw_fd(), &mut set) }?;
        Ok(set != 0)
    }

    /// Clears the exclusive flag of the tty behind `f`; whether it was set.
    pub(crate) fn clear_exclusive(f: &impl AsRawFd) -> nix::Result<bool> {
        if !is_exclusive(f)? {
            return Ok(false);
        }
        // SAFETY: TIOCNXCL takes no argument and only clears the tty's exclusive flag; the fd is
        // open for the call (borrowed from `f`).
        unsafe { tiocnxcl(borrow(f).as_raw_fd()) }?;
        Ok(true)
    }

    /// Whether another open file holds an advisory lock (`flock`, shared or
    /// exclusive) on the file behind `f`. (Found by taking an exclusive lock
    /// for a moment: a client taking its own lock in that microsecond fails to.)
    pub(crate) fn locked_by_another(f: &impl AsRawFd) -> nix::Result<bool> {
        use nix::libc::{LOCK_EX, LOCK_NB, LOCK_UN, flock};
        let fd = borrow(f).as_raw_fd();
        // SAFETY: flock only takes or drops an advisory lock on the open fd (borrowed from `f`).
        if unsafe { flock(fd, LOCK_EX | LOCK_NB) } == 0 {
            // SAFETY: as above.
            unsafe { flock(fd, LOCK_UN) };
            return Ok(false);
        }
        match nix::errno::Errno::last() {
            nix::errno::Errno::EWOULDBLOCK => Ok(true),
            e => Err(e),
        }
    }

    pub(crate) fn settings(f: &impl AsRawFd) -> nix::Result<Settings> {
        tcgetattr(borrow(f)).map(Settings::from)
    }

    pub(crate) fn set_settings(f: &impl AsRawFd, s: &Settings) -> nix::Result<()> {
        tcsetattr(borrow(f), SetArg::TCSANOW, &(*s).into())
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Event {
        Opened,
        Closed,
        /// Events were lost (the kernel's queue overflowed).
        Lost,
    }

    /// `Inotify` as a raw fd, for tokio's `AsyncFd`.
    struct Fd(Inotify);

    impl AsRawFd for Fd {
        fn as_raw_fd(&self) -> RawFd {
            self.0.as_fd().as_raw_fd()
        }
    }

    /// Opens and closes of one path.
    pub(crate) struct OpenCloseWatch(AsyncFd<Fd>);

    impl OpenCloseWatch {
        pub(crate) fn new(path: &Path) -> io::Result<OpenCloseWatch> {
            let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC)?;
            inotify.add_watch(path, AddWatchFlags::IN_OPEN | AddWatchFlags::IN_CLOSE)?;
            // SAFETY: `Fd` owns the inotify fd (an `OwnedFd` inside `Inotify`), so it stays open and
            // the same for as long as the `AsyncFd` that owns the `Fd`, and `as_raw_fd` always returns it.
            let fd = unsafe { AsyncFd::register_with_interest(Fd(inotify), tokio::io::Interest::READABLE) };
            Ok(OpenCloseWatch(fd.map_err(|e| e.into_parts().1)?))
        }

        /// The next opens and closes, in order. (A failed open, EBUSY for
        /// instance, makes neither event.)
        pub(crate) async fn next(&self) -> io::Result<Vec<Event>> {
            loop {
                let mut ready = self.0.readable().await?;
                match ready.try_io(|fd| fd.get_ref().0.read_events().map_err(io::Error::from)) {
                    Ok(events) => {
                        let mut out = Vec::new();
                        for e in events? {
                            if e.mask.contains(AddWatchFlags::IN_Q_OVERFLOW) {
                                out.push(Event::Lost);
                            }
                            if e.mask.contains(AddWatchFlags::IN_OPEN) {
                                out.push(Event::Opened);
                            }
                            if e.mask.intersects(AddWatchFlags::IN_CLOSE) {
                                out.push(Event::Closed);
                            }
                        }
                        return Ok(out);
                    }
                    Err(_would_block) => continue,
                }
            }
        }
    }
}

#[cfg(not(target_os = "linux"))]
pub(super) mod sys {
    //! Elsewhere: no watch (the pty's exclusive flag and settings are handled on Linux only).
    use std::io;
    use std::os::fd::AsRawFd;
    use std::path::Path;

    #[derive(Debug, Clone)]
    pub(crate) struct Settings;

    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub(crate) enum Event {
        Opened,
        Closed,
        Lost,
    }

    fn unsupported() -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, "Linux only")
    }

    pub(crate) fn clear_exclusive(_f: &impl AsRawFd) -> io::Result<bool> {
        Err(unsupported())
    }
    pub(crate) fn locked_by_another(_f: &impl AsRawFd) -> io::Result<bool> {
        Err(unsupported())
    }
    pub(crate) fn settings(_f: &impl AsRawFd) -> io::Result<Settings> {
        Err(unsupported())
    }
    pub(crate) fn set_settings(_f: &impl AsRawFd, _s: &Settings) -> io::Result<()> {
        Err(unsupported())
    }

    pub(crate) struct OpenCloseWatch;

    impl OpenCloseWatch {
        pub(crate) fn new(_path: &Path) -> io::Result<OpenCloseWatch> {
            Err(unsupported())
        }
        pub(crate) async fn next(&self) -> io::Result<Vec<Event>> {
            std::future::pending().await
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use std::time::{Duration, Instant};

    use super::*;

    /// The flag of the pty's slave tty, read through the slave fd serve holds.
    fn exclusive(pty: &Pty) -> bool {
        sys::is_exclusive(&pty.slave).unwrap()
    }

    /// Runs `client` against `pty` with the guard on; returns the notes it wrote.
    async fn guarded<F: std::future::Future<Output = ()>>(pty: &Pty, client: F) -> Vec<String> {
        let (notes_tx, notes_rx) = mpsc::sync_channel(64);
        let (stop_tx, stop_rx) = watch::channel(false);
        let guard = keep_reopenable(&pty.slave, pty.fresh.as_ref(), &pty.path, notes_tx, stop_rx);
        let client = async {
            // Give the watch a moment to be set up.
            tokio::time::sleep(Duration::from_millis(50)).await;
            client.await;
            let _ = stop_tx.send(true);
        };
        tokio::join!(guard, client);
        notes_rx
            .try_iter()
            .filter_map(|m| match m {
                ToTwin::Note(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let t0 = Instant::now();
        while !done() {
            assert!(t0.elapsed() < Duration::from_secs(2), "{what}: not within 2 s");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    #[tokio::test]
    async fn serialport_clears_the_flag_when_dropped_but_not_when_its_fd_is_just_closed() {
        let pty = Pty::open().unwrap();
        let path = pty.path().to_string_lossy().into_owned();
        let port = tokio_serial::new(&path, 19_200).open_native().unwrap();
        assert!(exclusive(&pty), "an exclusive open sets the tty's flag");
        drop(port);
        assert!(!exclusive(&pty), "serialport's Drop issues TIOCNXCL before closing");
        let port = tokio_serial::new(&path, 19_200).open_native().unwrap();
        nix::unistd::close(port).unwrap();
        assert!(exclusive(&pty), "a plain close (a killed client, process::exit) leaves it set");
    }

    /// The speed bits of the slave's settings.
    fn speed(pty: &Pty) -> nix::libc::tcflag_t {
        sys::settings(&pty.slave).unwrap().c_cflag & nix::libc::CBAUD
    }

    #[tokio::test]
    async fn a_close_clears_the_exclusive_flag_a_client_left_behind() {
        let pty = Pty::open().unwrap();
        let path = pty.path().to_string_lossy().into_owned();
        let notes = guarded(&pty, async {
            let port = tokio_serial::new(&path, 19_200).open_native().unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert!(exclusive(&pty), "not cleared behind the back of the client that has the port");
            nix::unistd::close(port).unwrap();
            until("the flag cleared after the close", || !exclusive(&pty)).await;
        })
        .await;
        assert!(notes.iter().any(|n| n.ends_with("opened by a client")), "{notes:?}");
        let closed = "closed by a client; its exclusive flag (TIOCEXCL) cleared; settings reset";
        assert!(notes.iter().any(|n| n.ends_with(closed)), "{notes:?}");
    }

    #[tokio::test]
    async fn nothing_is_reset_while_another_client_holds_the_port_locked() {
        use std::os::unix::fs::OpenOptionsExt;
        let pty = Pty::open().unwrap();
        let path = pty.path().to_string_lossy().into_owned();
        let fresh = speed(&pty);
        let notes = guarded(&pty, async {
            // A tokio-serial client that shares the port (a shared flock), at 19200 baud ...
            let a = tokio_serial::new(&path, 19_200).open_native().unwrap();
            let mut a = a;
            a.set_exclusive(false).unwrap();
            assert_ne!(speed(&pty), fresh);
            // ... while another program opens and closes the pty.
            let b = std::fs::OpenOptions::new().read(true).write(true).custom_flags(nix::libc::O_NOCTTY).open(&path);
            drop(b.unwrap());
            tokio::time::sleep(Duration::from_millis(20)).await;
            assert_ne!(speed(&pty), fresh, "reset under a client that holds the port");
            drop(a);
            until("the settings restored after the locking client closed", || speed(&pty) == fresh).await;
        })
        .await;
        assert!(notes.iter().any(|n| n.ends_with("another one holds it locked: nothing reset")), "{notes:?}");
    }

    /// Opens the pty as pyserial does: 19200 8E1 with one `tcsetattr`, which fails (EINVAL) if
    /// the pty is at 19200 already (the parity cannot be applied, and nothing else changes).
    fn open_8e1(path: &str) -> nix::Result<std::fs::File> {
        use nix::sys::termios::{BaudRate, ControlFlags, SetArg, cfsetspeed, tcgetattr, tcsetattr};
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(nix::libc::O_NOCTTY)
            .open(path)
            .map_err(|e| nix::errno::Errno::from_raw(e.raw_os_error().unwrap_or(0)))?;
        let mut t = tcgetattr(&file)?;
        cfsetspeed(&mut t, BaudRate::B19200)?;
        t.control_flags |= ControlFlags::PARENB | ControlFlags::CS8;
        tcsetattr(&file, SetArg::TCSANOW, &t)?;
        Ok(file)
    }

    #[tokio::test]
    async fn every_client_finds_the_settings_of_a_fresh_pty() {
        let pty = Pty::open().unwrap();
        let path = pty.path().to_string_lossy().into_owned();
        let fresh = speed(&pty);
        guarded(&pty, async {
            for round in 0..3 {
                // Without serve's reset, the second round fails with EINVAL on Linux 6.18: the pty
                // is at 19200 already and cannot take the parity.
                let port = open_8e1(&path).unwrap_or_else(|e| panic!("open {round}: {e}"));
                assert_ne!(speed(&pty), fresh);
                drop(port);
                until("the settings restored", || speed(&pty) == fresh).await;
            }
        })
        .await;
    }
}
