//! Modbus TCP (*Modbus Messaging on TCP/IP Implementation Guide V1.0b*): MBAP
//! header (transaction id, protocol id 0, length, unit id) + PDU; any number
//! of concurrent client connections, each served in order.
//!
//! The unit id picks the twin: a served unit's id addresses it; 0 and 255 (the
//! "this device" ids of Modbus TCP) address the first served unit; any other id
//! is answered with exception 0B (gateway target device failed to respond), as
//! a TCP-to-RTU gateway does for a unit that is not on its bus.

use std::sync::mpsc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::line::stopped;
use super::twin::ToTwin;

/// MBAP header length: transaction id, protocol id, length, unit id.
const MBAP_LEN: usize = 7;

/// Accepts connections until the server stops; each gets a task of its own.
pub(crate) async fn serve_tcp(listener: TcpListener, to_twin: mpsc::Sender<ToTwin>, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            r = listener.accept() => match r {
                Ok((s, peer)) => {
                    let _ = s.set_nodelay(true);
                    n += 1;
                    let link = format!("tcp#{n}");
                    let _ = to_twin.send(ToTwin::Note(format!("{link}: connected from {peer}")));
                    conns.spawn(connection(s, link, to_twin.clone(), stop.clone()));
                }
                Err(e) => {
                    eprintln!("warning: Modbus TCP accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    conns.shutdown().await;
}

async fn connection(mut s: TcpStream, link: String, to_twin: mpsc::Sender<ToTwin>, mut stop: watch::Receiver<bool>) {
    let why = loop {
        let mut h = [0u8; MBAP_LEN];
        tokio::select! {
            _ = stopped(&mut stop) => return,
            r = s.read_exact(&mut h) => if let Err(e) = r {
                break if e.kind() == std::io::ErrorKind::UnexpectedEof { "closed".to_owned() } else { e.to_string() };
            }
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
        if let Err(e) = s.read_exact(&mut pdu).await {
            break format!("truncated request: {e}");
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
