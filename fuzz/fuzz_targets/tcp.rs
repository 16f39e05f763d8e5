//! Modbus TCP framing: the serve library's own MBAP reader
//! (`smartpro_sim::serve::read_request`, what every TCP connection runs) on
//! any byte stream, cut into reads of any sizes (docs/reliability.md, "tcp").
//!
//! Input: two bytes seeding the read sizes (1 to 300 bytes per read: partial
//! headers, partial PDUs, many requests per read), then the stream.
//!
//! Oracle: an independent reading of the MBAP rules (*Modbus Messaging on
//! TCP/IP* §3.1.3): each request is a 7-byte header with protocol id 0 and a
//! length of 2..=254 counting the unit id and the PDU; the reader returns
//! exactly those requests in order, then ends at the first bad header (as a
//! bad header), inside a PDU (truncated) or at the end of the stream; it reads
//! no byte beyond the request it returns. Replies encoded by
//! `encode_reply` parse back to their transaction id, unit and length.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use libfuzzer_sys::fuzz_target;
use smartpro_sim::serve::{MBAP_LEN, MbapEnd, MbapRequest, TcpLimits, encode_reply, parse_header, read_request};
use tokio::io::{AsyncRead, ReadBuf};

/// The stream as a peer sends it: reads of varying sizes, then end of file.
struct Chunked<'a> {
    data: &'a [u8],
    pos: usize,
    seed: u32,
}

impl AsyncRead for Chunked<'_> {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        // xorshift32: read sizes 1..=300, repeatable from the seed.
        let mut x = self.seed.max(1);
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.seed = x;
        let size = 1 + (x % 300) as usize;
        let n = size.min(buf.remaining()).min(self.data.len() - self.pos);
        let start = self.pos;
        buf.put_slice(&self.data[start..start + n]);
        self.pos += n;
        Poll::Ready(Ok(()))
    }
}

/// What the MBAP rules make of `stream`: the requests, then how it ends.
enum Expected {
    Request(MbapRequest),
    EndOfStream,
    BadHeader { protocol: u16, len: usize },
    Truncated,
}

fn expected(stream: &[u8]) -> Vec<Expected> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let rest = &stream[at..];
        if rest.len() < MBAP_LEN {
            out.push(Expected::EndOfStream);
            return out;
        }
        let protocol = u16::from_be_bytes([rest[2], rest[3]]);
        let len = usize::from(u16::from_be_bytes([rest[4], rest[5]]));
        if protocol != 0 || !(2..=254).contains(&len) {
            out.push(Expected::BadHeader { protocol, len });
            return out;
        }
        let end = MBAP_LEN + len - 1;
        if rest.len() < end {
            out.push(Expected::Truncated);
            return out;
        }
        let tid = u16::from_be_bytes([rest[0], rest[1]]);
        out.push(Expected::Request(MbapRequest { tid, unit: rest[6], pdu: rest[MBAP_LEN..end].to_vec() }));
        at += end;
    }
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let seed = u32::from(u16::from_be_bytes([data[0], data[1]]));
    let stream = &data[2..];
    let limits = TcpLimits::default();
    let mut reader = Chunked { data: stream, pos: 0, seed };
    let mut consumed = 0usize;
    RUNTIME.with(|rt| {
        rt.block_on(async {
            for want in expected(stream) {
                let got = read_request(&mut reader, &limits).await;
                match (want, got) {
                    (Expected::Request(w), Ok(g)) => {
                        assert_eq!(w, g);
                        consumed += MBAP_LEN + g.pdu.len();
                        assert_eq!(reader.pos, consumed, "read beyond the request");
                        let reply = encode_reply(g.tid, g.unit, &g.pdu);
                        let header: [u8; MBAP_LEN] = reply[..MBAP_LEN].try_into().unwrap();
                        let (tid, unit, n) = parse_header(&header).unwrap();
                        assert_eq!((tid, unit, &reply[MBAP_LEN..]), (g.tid, g.unit, &g.pdu[..n]));
                    }
                    (Expected::EndOfStream, Err(MbapEnd::Io(e))) => {
                        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                    }
                    (Expected::BadHeader { protocol, len }, Err(MbapEnd::BadHeader { protocol: p, len: l })) => {
                        assert_eq!((protocol, len), (p, l));
                        assert_eq!(reader.pos, consumed + MBAP_LEN, "read beyond the bad header");
                    }
                    (Expected::Truncated, Err(MbapEnd::Truncated(e))) => {
                        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
                    }
                    (_, got) => panic!("the MBAP reader returned {got:?} at byte {consumed}"),
                }
            }
        })
    });
});
