//! The RTU line: a byte stream (pty, serial port, RTU-over-TCP connection)
//! between a master and the twin. This side only moves bytes and timestamps
//! them; framing and answers happen in the twin thread.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::watch;

use super::Clock;
use super::twin::ToTwin;

/// How often a lost serial device is looked for.
pub const REOPEN_POLL: Duration = Duration::from_millis(500);

/// Why serving one port ended.
pub(crate) enum PortEnd<P> {
    Stopped,
    Lost(String),
    /// A newer connection (and its peer's name) takes over the line.
    Replaced(P, String),
}

/// How long a transport waits before it offers a message to a full queue again.
const QUEUE_FULL_RETRY: Duration = Duration::from_millis(1);

/// Queues a note for the frame log; dropped when the queue to the twin is full
/// (the frame log misses that line; serving goes on).
pub(crate) fn note(to_twin: &mpsc::SyncSender<ToTwin>, text: String) {
    let _ = to_twin.try_send(ToTwin::Note(text));
}

/// Queues `msg` for the twin, waiting while the queue is full (the transport
/// stops reading meanwhile, so the bytes wait in the OS buffer and the sender
/// is slowed: backpressure, never an unbounded queue). `Err` once the twin is gone.
pub(crate) async fn send_waiting(to_twin: &mpsc::SyncSender<ToTwin>, mut msg: ToTwin) -> Result<(), ()> {
    loop {
        match to_twin.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(mpsc::TrySendError::Full(m)) => {
                msg = m;
                tokio::time::sleep(QUEUE_FULL_RETRY).await;
            }
            Err(mpsc::TrySendError::Disconnected(_)) => return Err(()),
        }
    }
}

/// The line's side of the channels.
pub(crate) struct LineCtx {
    pub to_twin: mpsc::SyncSender<ToTwin>,
    pub clock: Clock,
    pub replies: tokio::sync::mpsc::Receiver<Vec<u8>>,
    pub stop: watch::Receiver<bool>,
}

impl LineCtx {
    pub fn note(&self, text: String) {
        note(&self.to_twin, text);
    }

    /// Drops replies queued for a port that is gone.
    pub fn discard_replies(&mut self) {
        while self.replies.try_recv().is_ok() {}
    }
}

/// Resolves when `stop` says so (or its sender is gone).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Serves one open port until it fails, the server stops, or (RTU over TCP) a
/// newer connection arrives on `newer`.
pub(crate) async fn serve_port<P>(
    port: &mut P,
    ctx: &mut LineCtx,
    newer: Option<&mut tokio::sync::mpsc::Receiver<(P, String)>>,
) -> PortEnd<P>
where
    P: AsyncRead + AsyncWrite + Unpin,
{
    let mut buf = [0u8; 512];
    let mut newer = newer;
    loop {
        let next = async {
            match newer.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = stopped(&mut ctx.stop) => return PortEnd::Stopped,
            read = port.read(&mut buf) => match read {
                Ok(0) => return PortEnd::Lost("end of file (the other side closed)".into()),
                Ok(n) => {
                    let at = ctx.clock.now();
                    if send_waiting(&ctx.to_twin, ToTwin::Rx { at, bytes: buf[..n].to_vec() }).await.is_err() {
                        return PortEnd::Stopped;
                    }
                }
                Err(e) => return PortEnd::Lost(e.to_string()),
            },
            Some(reply) = ctx.replies.recv() => {
                let write = async {
                    port.write_all(&reply).await?;
                    port.flush().await
                };
                tokio::select! {
                    r = write => if let Err(e) = r {
                        return PortEnd::Lost(format!("write failed: {e}"));
                    },
                    _ = stopped(&mut ctx.stop) => return PortEnd::Stopped,
                }
            }
            Some((p, peer)) = next => return PortEnd::Replaced(p, peer),
        }
    }
}

/// Serves a serial device; when it disappears, keeps the twin running, looks
/// for `path` every [`REOPEN_POLL`] and serves it again once it opens.
pub(crate) async fn serve_serial(
    path: &Path,
    builder: &tokio_serial::SerialPortBuilder,
    mut port: tokio_serial::SerialStream,
    ctx: &mut LineCtx,
) -> u64 {
    let mut losses = 0;
    loop {
        match serve_port(&mut port, ctx, None).await {
            PortEnd::Stopped | PortEnd::Replaced(..) => return losses,
            PortEnd::Lost(why) => {
                losses += 1;
                drop(port);
                ctx.discard_replies();
                eprintln!(
                    "warning: {}: port lost ({why}); the twin keeps running; looking for the device every {} ms",
                    path.display(),
                    REOPEN_POLL.as_millis()
                );
                ctx.note(format!("{}: port lost ({why})", path.display()));
            }
        }
        let mut last_error = String::new();
        port = loop {
            tokio::select! {
                _ = stopped(&mut ctx.stop) => return losses,
                _ = tokio::time::sleep(REOPEN_POLL) => {}
            }
            if !path.exists() {
                continue;
            }
            match tokio_serial::SerialStream::open(builder) {
                Ok(p) => break p,
                Err(e) => {
                    let e = e.to_string();
                    if e != last_error {
                        eprintln!("warning: {}: present but cannot be opened yet: {e}", path.display());
                        last_error = e;
                    }
                }
            }
        };
        ctx.discard_replies();
        eprintln!("{}: port back; serving again", path.display());
        ctx.note(format!("{}: port back", path.display()));
    }
}

/// RTU over TCP: one connection at a time carries the line; a newer connection
/// replaces the current one (a client that reconnects after a crash is served
/// at once, whatever became of its old socket).
pub(crate) async fn serve_rtu_tcp(listener: tokio::net::TcpListener, ctx: &mut LineCtx) {
    let (conn_tx, mut conn_rx) = tokio::sync::mpsc::channel::<(tokio::net::TcpStream, String)>(4);
    let mut stop = ctx.stop.clone();
    let accept = async move {
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                r = listener.accept() => match r {
                    Ok((s, peer)) => {
                        let _ = s.set_nodelay(true);
                        if conn_tx.send((s, peer.to_string())).await.is_err() {
                            return;
                        }
                    }
                    Err(e) => {
                        eprintln!("warning: RTU-over-TCP accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                }
            }
        }
    };
    let serve = async {
        let mut current: Option<(tokio::net::TcpStream, String)> = None;
        loop {
            let (mut stream, peer) = match current.take() {
                Some(c) => c,
                None => tokio::select! {
                    _ = stopped(&mut ctx.stop) => return,
                    c = conn_rx.recv() => match c {
                        Some(c) => c,
                        None => return,
                    }
                },
            };
            ctx.note(format!("RTU-over-TCP client {peer} connected"));
            ctx.discard_replies();
            match serve_port(&mut stream, ctx, Some(&mut conn_rx)).await {
                PortEnd::Stopped => return,
                PortEnd::Lost(why) => ctx.note(format!("RTU-over-TCP client {peer} gone ({why})")),
                PortEnd::Replaced(s, new_peer) => {
                    ctx.note(format!("RTU-over-TCP client {new_peer} replaces {peer}"));
                    current = Some((s, new_peer));
                }
            }
        }
    };
    tokio::join!(accept, serve);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn issue_20_the_line_waits_for_room_in_a_full_twin_queue_and_loses_nothing() {
        let (tx, rx) = mpsc::sync_channel::<ToTwin>(1);
        let at = firmware_core::Instant::ZERO;
        send_waiting(&tx, ToTwin::Rx { at, bytes: vec![1] }).await.unwrap();
        // The queue is full: the second read waits until the twin takes the first.
        let second = tokio::spawn({
            let tx = tx.clone();
            async move { send_waiting(&tx, ToTwin::Rx { at, bytes: vec![2] }).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!second.is_finished(), "sent into a full queue");
        let got = |m: ToTwin| match m {
            ToTwin::Rx { bytes, .. } => bytes,
            _ => panic!("not bytes"),
        };
        assert_eq!(got(rx.recv().unwrap()), [1]);
        second.await.unwrap().unwrap();
        assert_eq!(got(rx.recv().unwrap()), [2]);
        // A note finds the queue full and is dropped rather than waited for.
        send_waiting(&tx, ToTwin::Rx { at, bytes: vec![3] }).await.unwrap();
        note(&tx, "dropped".into());
        assert_eq!(got(rx.recv().unwrap()), [3]);
        assert!(rx.try_recv().is_err());
        drop(rx);
        assert!(send_waiting(&tx, ToTwin::Note("x".into())).await.is_err(), "the twin is gone");
    }
}
