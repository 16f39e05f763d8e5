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

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::line::{note, stopped};
use super::twin::ToTwin;

/// MBAP header length: transaction id, protocol id, length, unit id.
pub const MBAP_LEN: usize = 7;

/// Modbus exception 06, server device busy (*Modbus Application Protocol* §7).
const BUSY_EXCEPTION: u8 = 0x06;

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
    to_twin: mpsc::SyncSender<ToTwin>,
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
                        note(&to_twin, why);
                        continue;
                    }
                    let _ = s.set_nodelay(true);
                    note(&to_twin, format!("{link}: connected from {peer}"));
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

/// A Modbus TCP request as it came off the connection: the MBAP header's
/// transaction id and unit id, and the PDU (function code + data).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbapRequest {
    pub tid: u16,
    pub unit: u8,
    pub pdu: Vec<u8>,
}

/// Why [`read_request`] returned no request; its text is the frame log's.
#[derive(Debug)]
pub enum MbapEnd {
    /// No byte of a request for [`TcpLimits::idle_timeout`].
    Idle(Duration),
    /// A request not complete [`TcpLimits::frame_timeout`] after its first byte.
    Slow(Duration),
    /// The connection closed or failed between requests, or in a header.
    Io(std::io::Error),
    /// A protocol id other than 0, or a length outside 2..=254.
    BadHeader { protocol: u16, len: usize },
    /// The connection closed or failed inside a PDU.
    Truncated(std::io::Error),
}

impl std::fmt::Display for MbapEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MbapEnd::Idle(t) => write!(f, "no request for {:.0} s: closing (idle timeout)", t.as_secs_f64()),
            MbapEnd::Slow(t) => {
                write!(f, "request not complete {:.1} s after its first byte: closing", t.as_secs_f64())
            }
            MbapEnd::Io(e) => f.write_str(&io_end(e)),
            MbapEnd::BadHeader { protocol, len } => {
                write!(f, "bad MBAP header (protocol id {protocol}, length {len}); closing the connection")
            }
            MbapEnd::Truncated(e) => write!(f, "truncated request: {e}"),
        }
    }
}

/// The transaction id, unit id and PDU length an MBAP header announces, or
/// why it is refused. The length field counts the unit id and the PDU, whose
/// function code and data take 1..=253 bytes (*Modbus Messaging on TCP/IP*
/// §3.1.3).
pub fn parse_header(h: &[u8; MBAP_LEN]) -> Result<(u16, u8, usize), MbapEnd> {
    let tid = u16::from_be_bytes([h[0], h[1]]);
    let protocol = u16::from_be_bytes([h[2], h[3]]);
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if protocol != 0 || !(2..=254).contains(&len) {
        return Err(MbapEnd::BadHeader { protocol, len });
    }
    Ok((tid, h[6], len - 1))
}

/// Reads the next request from `s` within `limits`: idle until its first
/// byte for at most the idle timeout, then the whole MBAP header and PDU
/// within the frame timeout. Reads exactly one request's bytes, however the
/// stream delivers them (a byte at a time, or several requests at once).
pub async fn read_request<S: AsyncRead + Unpin>(s: &mut S, limits: &TcpLimits) -> Result<MbapRequest, MbapEnd> {
    let mut h = [0u8; MBAP_LEN];
    // Idle until a request's first byte; from then on the frame timeout runs.
    match tokio::time::timeout(limits.idle_timeout, s.read_exact(&mut h[..1])).await {
        Err(_) => return Err(MbapEnd::Idle(limits.idle_timeout)),
        Ok(Err(e)) => return Err(MbapEnd::Io(e)),
        Ok(Ok(_)) => {}
    }
    let deadline = tokio::time::Instant::now() + limits.frame_timeout;
    match tokio::time::timeout_at(deadline, s.read_exact(&mut h[1..])).await {
        Err(_) => return Err(MbapEnd::Slow(limits.frame_timeout)),
        Ok(Err(e)) => return Err(MbapEnd::Io(e)),
        Ok(Ok(_)) => {}
    }
    let (tid, unit, pdu_len) = parse_header(&h)?;
    let mut pdu = vec![0u8; pdu_len];
    match tokio::time::timeout_at(deadline, s.read_exact(&mut pdu)).await {
        Err(_) => Err(MbapEnd::Slow(limits.frame_timeout)),
        Ok(Err(e)) => Err(MbapEnd::Truncated(e)),
        Ok(Ok(_)) => Ok(MbapRequest { tid, unit, pdu }),
    }
}

/// The MBAP frame of a reply: the request's transaction id, protocol id 0,
/// the length of unit id + PDU, the unit id, the PDU (at most 253 bytes).
pub fn encode_reply(tid: u16, unit: u8, pdu: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(MBAP_LEN + pdu.len());
    out.extend_from_slice(&tid.to_be_bytes());
    out.extend_from_slice(&0u16.to_be_bytes());
    out.extend_from_slice(&((pdu.len() + 1) as u16).to_be_bytes());
    out.push(unit);
    out.extend_from_slice(pdu);
    out
}

/// The reply to a request the twin's queue had no room for: exception 06
/// (server device busy), which tells a master to try again later.
fn busy_reply(pdu: &[u8]) -> Vec<u8> {
    let fc = pdu.first().copied().unwrap_or(0);
    vec![fc | 0x80, BUSY_EXCEPTION]
}

async fn connection(
    mut s: TcpStream,
    link: String,
    limits: TcpLimits,
    to_twin: mpsc::SyncSender<ToTwin>,
    mut stop: watch::Receiver<bool>,
) {
    let why = loop {
        let request = tokio::select! {
            _ = stopped(&mut stop) => return,
            r = read_request(&mut s, &limits) => r,
        };
        let MbapRequest { tid, unit, pdu } = match request {
            Ok(r) => r,
            Err(end) => break end.to_string(),
        };
        let (tx, rx) = tokio::sync::oneshot::channel();
        let reply = match to_twin.try_send(ToTwin::Pdu { link: link.clone(), tid, unit, pdu, reply: tx }) {
            Ok(()) => {
                let reply = tokio::select! {
                    _ = stopped(&mut stop) => return,
                    r = rx => r,
                };
                let Ok(Some((unit, pdu))) = reply else {
                    continue; // no reply (a fault): the client times out, as on a real network
                };
                encode_reply(tid, unit, &pdu)
            }
            Err(mpsc::TrySendError::Full(ToTwin::Pdu { pdu, .. })) => {
                // The twin is behind: say so at once rather than queue without bound.
                encode_reply(tid, unit, &busy_reply(&pdu))
            }
            Err(_) => return, // the twin has stopped
        };
        if let Err(e) = s.write_all(&reply).await {
            break e.to_string();
        }
    };
    note(&to_twin, format!("{link}: {why}"));
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
        let (to_twin, from_tcp) = mpsc::sync_channel::<ToTwin>(super::super::TO_TWIN_QUEUE);
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

    #[tokio::test]
    async fn issue_20_a_request_the_full_twin_queue_cannot_take_is_answered_busy() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // A twin that has fallen behind: its queue of one holds a message it never takes.
        let (to_twin, from_tcp) = mpsc::sync_channel::<ToTwin>(1);
        to_twin.try_send(ToTwin::Note("queued before".into())).unwrap();
        let (_stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(serve_tcp(listener, TcpLimits::default(), to_twin, stop_rx));
        let mut c = TcpStream::connect(addr).await.unwrap();
        c.write_all(&request(42)).await.unwrap();
        let mut reply = [0u8; 9];
        tokio::time::timeout(Duration::from_secs(2), c.read_exact(&mut reply)).await.unwrap().unwrap();
        assert_eq!(reply, [0, 42, 0, 0, 0, 3, 1, 0x83, 0x06], "exception 06 with the request's tid and unit");
        // Nothing beyond the queue's capacity was queued.
        assert_eq!(from_tcp.try_iter().count(), 1);
    }

    #[tokio::test]
    async fn issue_20_read_request_takes_requests_however_the_stream_cuts_them() {
        // Two requests in one write, read back one by one; then one a byte at a time.
        let mut two = request(1);
        two.extend_from_slice(&request(2));
        let (mut a, mut b) = tokio::io::duplex(64);
        a.write_all(&two).await.unwrap();
        let limits = TcpLimits::default();
        for tid in [1, 2] {
            let r = read_request(&mut b, &limits).await.unwrap();
            assert_eq!(r, MbapRequest { tid, unit: 1, pdu: vec![0x03, 0x01, 0x00, 0x00, 0x01] });
        }
        let one = request(3);
        let drip = async {
            for byte in one {
                a.write_all(&[byte]).await.unwrap();
                tokio::task::yield_now().await;
            }
            a
        };
        let (r, a) = tokio::join!(read_request(&mut b, &limits), drip);
        assert_eq!(r.unwrap().tid, 3);
        drop(a);
        assert!(matches!(read_request(&mut b, &limits).await, Err(MbapEnd::Io(_))), "end of stream");
        let mut bad = [0u8; MBAP_LEN];
        bad[2] = 1; // protocol id 256
        bad[5] = 6;
        assert_eq!(
            parse_header(&bad).unwrap_err().to_string(),
            "bad MBAP header (protocol id 256, length 6); closing the connection"
        );
        assert_eq!(encode_reply(7, 1, &[0x83, 0x02]), [0, 7, 0, 0, 0, 3, 1, 0x83, 0x02]);
    }
}
