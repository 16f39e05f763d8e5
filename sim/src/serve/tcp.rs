//! Modbus TCP (*Modbus Messaging on TCP/IP Implementation Guide V1.0b*): MBAP
//! header (transaction id, protocol id 0, length, unit id) + PDU; up to
//! [`TcpLimits::max_connections`] concurrent client connections, each served
//! in order.
//!
//! The unit id picks the twin: a served unit's id addresses it; 0 and 255 (the
//! "this device" ids of Modbus TCP) address the first served unit; any other id
//! is answered with exception 0B (gateway target device failed to respond), as
//! a TCP-to-RTU gateway does for a unit that is not on its bus.
//!
//! # Limits
//!
//! No client can hold the server's resources forever (issue 20): a connection
//! beyond [`TcpLimits::max_connections`] is accepted and closed at once (the
//! guide's §4.2.1 lets a server refuse connections beyond its capacity); a
//! connection that sends no request for [`TcpLimits::idle_timeout`] is closed;
//! a request whose first byte has arrived must be complete (MBAP header and
//! PDU) within [`TcpLimits::frame_timeout`], so a client that drips a frame a
//! byte at a time is closed too. Each closing is noted in the frame log.

use std::sync::mpsc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::line::stopped;
use super::twin::ToTwin;

/// MBAP header length: transaction id, protocol id, length, unit id.
const MBAP_LEN: usize = 7;

/// What the Modbus TCP server allows a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpLimits {
    /// Connections open at once; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection with no request for this long is closed.
    pub idle_timeout: Duration,
    /// From a request's first byte to its last (MBAP header and PDU).
    pub frame_timeout: Duration,
}

impl TcpLimits {
    /// Default of `--tcp-max-connections`: a gateway, an HMI, a logger and a
    /// few engineers' tools at once, as a plant's Modbus TCP device allows
    /// (commercial gateways accept 8–32).
    pub const DEFAULT_MAX_CONNECTIONS: usize = 16;
    /// Default of `--tcp-idle-timeout`: longer than any sensible poll interval
    /// (SCADA polls every 1–10 s), short enough that abandoned connections are
    /// freed within minutes.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
    /// A request of at most 260 bytes on a LAN arrives in milliseconds; 5 s
    /// is generous for any real client and bounds a slow-drip one.
    pub const DEFAULT_FRAME_TIMEOUT: Duration = Duration::from_secs(5);
}

impl Default for TcpLimits {
    fn default() -> Self {
        TcpLimits {
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            frame_timeout: Self::DEFAULT_FRAME_TIMEOUT,
        }
    }
}

/// Accepts connections until the server stops; each gets a task of its own.
pub(crate) async fn serve_tcp(
    listener: TcpListener,
    limits: TcpLimits,
    to_twin: mpsc::Sender<ToTwin>,
    mut stop: watch::Receiver<bool>,
) {
    let mut conns = tokio::task::JoinSet::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok((s, peer)) => {
                    n += 1;
                    let link = format!("tcp#{n}");
                    // Finished connections are joined below; what is left is open.
                    while conns.try_join_next().is_some() {}
                    if conns.len() >= limits.max_connections {
                        drop(s);
                        let why = format!(
                            "{link}: connection from {peer} refused: {} connections open already (--tcp-max-connections)",
                            conns.len()
                        );
                        let _ = to_twin.send(ToTwin::Note(why));
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    let _ = to_twin.send(ToTwin::Note(format!("{link}: connected from {peer}")));
                    conns.spawn(connection(s, link, limits, to_twin.clone(), stop.clone()));
                }
                Err(e) => {
                    eprintln!("warning: Modbus TCP accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

/// Why a connection ended, for the frame log.
fn io_end(e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::UnexpectedEof { "closed".to_owned() } else { e.to_string() }
}

async fn connection(
    mut s: TcpStream,
    link: String,
    limits: TcpLimits,
    to_twin: mpsc::Sender<ToTwin>,
    mut stop: watch::Receiver<bool>,
) {
    let why = loop {
        let mut h = [0u8; MBAP_LEN];
        // Idle until a request's first byte; from then on the frame timeout runs.
        tokio::select! {
            _ = stopped(&mut stop) => return,
            r = tokio::time::timeout(limits.idle_timeout, s.read_exact(&mut h[..1])) => match r {
                Err(_) => break format!("no request for {:.0} s: closing (idle timeout)", limits.idle_timeout.as_secs_f64()),
                Ok(Err(e)) => break io_end(&e),
                Ok(Ok(_)) => {}
            }
        }
        let deadline = tokio::time::Instant::now() + limits.frame_timeout;
        let slow = || {
            format!("request not complete {:.1} s after its first byte: closing", limits.frame_timeout.as_secs_f64())
        };
        match tokio::time::timeout_at(deadline, s.read_exact(&mut h[1..])).await {
            Err(_) => break slow(),
            Ok(Err(e)) => break io_end(&e),
            Ok(Ok(_)) => {}
        }
        let tid = u16::from_be_bytes([h[0], h[1]]);
        let protocol = u16::from_be_bytes([h[2], h[3]]);
        let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
        let unit = h[6];
        // Length counts the unit id and the PDU (1..=253 bytes).
        if protocol != 0 || !(2..=254).contains(&len) {
            break format!("bad MBAP header (protocol id {protocol}, length {len}); closing the connection");
        }
        let mut pdu = vec![0u8; len - 1];
        match tokio::time::timeout_at(deadline, s.read_exact(&mut pdu)).await {
            Err(_) => break slow(),
            Ok(Err(e)) => break format!("truncated request: {e}"),
            Ok(Ok(_)) => {}
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        if to_twin.send(ToTwin::Pdu { link: link.clone(), tid, unit, pdu, reply: tx }).is_err() {
            return;
        }
        let reply = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = rx => r,
        };
        let Ok(Some((unit, pdu))) = reply else {
            continue; // no reply (a fault): the client times out, as on a real network
        };
        let mut out = Vec::with_capacity(MBAP_LEN + pdu.len());
        out.extend_from_slice(&tid.to_be_bytes());
        out.extend_from_slice(&0u16.to_be_bytes());
        out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
        out.push(unit);
        out.extend_from_slice(&pdu);
        if let Err(e) = s.write_all(&out).await {
            break e.to_string();
        }
    };
    let _ = to_twin.send(ToTwin::Note(format!("{link}: {why}")));
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A read of FC03, unit 1, 1 register at 0x0100, transaction `tid`.
    fn request(tid: u16) -> Vec<u8> {
        let mut r = tid.to_be_bytes().to_vec();
        r.extend_from_slice(&[0, 0, 0, 6, 1, 0x03, 0x01, 0x00, 0x00, 0x01]);
        r
    }

    /// Serves with `limits`; a stand-in twin answers every request with one register 0x1234
    /// and collects the notes.
    async fn server(limits: TcpLimits) -> (std::net::SocketAddr, watch::Sender<bool>, mpsc::Receiver<String>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (to_twin, from_tcp) = mpsc::channel::<ToTwin>();
        let (notes_tx, notes) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok(msg) = from_tcp.recv() {
                match msg {
                    ToTwin::Pdu { unit, reply, .. } => {
                        let _ = reply.send(Some((unit, vec![0x03, 2, 0x12, 0x34])));
                    }
                    ToTwin::Note(n) => {
                        let _ = notes_tx.send(n);
                    }
                    _ => {}
                }
            }
        });
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve_tcp(listener, limits, to_twin, stop_rx));
        (addr, stop_tx, notes)
    }

    async fn answered(c: &mut TcpStream, tid: u16) -> bool {
        if c.write_all(&request(tid)).await.is_err() {
            return false;
        }
        let mut reply = [0u8; 11];
        matches!(tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut reply)).await, Ok(Ok(_)))
            && reply[..2] == tid.to_be_bytes()
            && reply[9..] == [0x12, 0x34]
    }

    /// The peer closed the connection within `within`.
    async fn closed_within(c: &mut TcpStream, within: Duration) -> bool {
        let mut b = [0u8; 1];
        matches!(tokio::time::timeout(within, c.read(&mut b)).await, Ok(Ok(0)) | Ok(Err(_)))
    }

    fn notes_containing(notes: &mpsc::Receiver<String>, what: &str) -> usize {
        notes.try_iter().filter(|n| n.contains(what)).count()
    }

    #[tokio::test]
    async fn issue_20_connections_beyond_the_limit_are_closed_and_the_others_served() {
        let limits = TcpLimits { max_connections: 2, ..TcpLimits::default() };
        let (addr, _stop, notes) = server(limits).await;
        let mut a = TcpStream::connect(addr).await.unwrap();
        let mut b = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut a, 1).await && answered(&mut b, 2).await);
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(closed_within(&mut c, Duration::from_secs(2)).await, "a third connection is closed");
        assert!(answered(&mut a, 3).await, "the open ones are still served");
        // One leaves: its place is free again.
        drop(b);
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut d = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut d, 4).await);
        assert_eq!(notes_containing(&notes, "refused: 2 connections open already"), 1);
    }

    #[tokio::test]
    async fn issue_20_an_idle_connection_is_closed_after_the_idle_timeout() {
        let limits = TcpLimits { idle_timeout: Duration::from_millis(300), ..TcpLimits::default() };
        let (addr, _stop, notes) = server(limits).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut c, 1).await);
        let t0 = std::time::Instant::now();
        assert!(closed_within(&mut c, Duration::from_secs(3)).await);
        let waited = t0.elapsed();
        assert!(waited >= Duration::from_millis(250), "closed after {waited:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(notes_containing(&notes, "idle timeout"), 1);
    }

    #[tokio::test]
    async fn issue_20_a_slow_drip_request_is_closed_after_the_frame_timeout() {
        let limits = TcpLimits { frame_timeout: Duration::from_millis(300), ..TcpLimits::default() };
        let (addr, _stop, notes) = server(limits).await;
        let mut c = TcpStream::connect(addr).await.unwrap();
        // A byte every 100 ms: 12 bytes would take 1.2 s.
        let req = request(7);
        let mut closed = false;
        for &b in &req {
            if c.write_all(&[b]).await.is_err() {
                closed = true;
                break;
            }
            if closed_within(&mut c, Duration::from_millis(100)).await {
                closed = true;
                break;
            }
        }
        assert!(closed, "the drip was cut off");
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(notes_containing(&notes, "not complete 0.3 s after its first byte"), 1);
        // A normal client on the same server is unaffected.
        let mut ok = TcpStream::connect(addr).await.unwrap();
        assert!(answered(&mut ok, 8).await);
    }
}
