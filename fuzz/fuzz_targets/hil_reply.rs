//! hil-rig's reply decoder: `hil_rig::link::Link` (what `poll`, `record`,
//! `compare` and `test` talk through) on any bytes from a board
//! (docs/reliability.md, "hil_reply").
//!
//! Input: the request (read 1..=125 registers, write one, write several),
//! the unit and retries, then the board's answers: one segment of bytes per
//! request the link sends (a segment may hold a reply, noise, a cut frame,
//! another unit's frame, two frames...). After its segment the board is
//! silent. Time is tokio's paused clock: timeouts pass at once.
//!
//! Oracle: no input panics or hangs; the link makes at most `retries + 1`
//! tries; data it returns is in a CRC-valid frame of the board's answers,
//! from the link's unit, with the request's function code and the register
//! count asked for; an exception it returns is in a CRC-valid exception frame
//! from that unit for that function.
#![no_main]

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use firmware_core::modbus::crc::crc16;
use hil_rig::link::{Link, LinkArgs, Parity};
use libfuzzer_sys::fuzz_target;
use smartpro_fuzz::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// A board that answers each request with the next segment, then is silent.
struct Board {
    segments: Vec<Vec<u8>>,
    next: usize,
    out: Vec<u8>,
    at: usize,
    chunk: usize,
}

impl AsyncRead for Board {
    fn poll_read(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.at == self.out.len() {
            return Poll::Pending; // silent: the link's timeout (a timer) wakes it
        }
        let n = self.chunk.min(buf.remaining()).min(self.out.len() - self.at);
        let at = self.at;
        buf.put_slice(&self.out[at..at + n]);
        self.at += n;
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Board {
    fn poll_write(mut self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        // A request went out: the board's next answer comes.
        if let Some(seg) = self.segments.get(self.next).cloned() {
            self.out.extend_from_slice(&seg);
        }
        self.next += 1;
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// Whether `answers` hold a CRC-valid frame that starts with `head` and has
/// `body_len` bytes between `head` and the CRC (any, if `None`).
fn frame_in(answers: &[Vec<u8>], head: &[u8], body: Option<&[u8]>) -> bool {
    answers.iter().any(|seg| {
        (0..seg.len()).any(|i| {
            seg[i..].starts_with(head)
                && match body {
                    Some(b) => {
                        let end = i + head.len() + b.len() + 2;
                        seg.len() >= end && seg[i + head.len()..end - 2] == *b && crc16(&seg[i..end]) == 0
                    }
                    None => (i + head.len() + 2..=seg.len()).any(|end| crc16(&seg[i..end]) == 0),
                }
        })
    })
}

thread_local! {
    static RUNTIME: tokio::runtime::Runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a tokio runtime");
}

fuzz_target!(|data: &[u8]| {
    let mut input = Bytes::new(data);
    let op = input.u8();
    let unit = 1 + input.u8() % 247;
    let retries = u32::from(input.u8() % 3);
    let chunk = 1 + usize::from(input.u8() % 64);
    let addr = input.u16();
    let count = 1 + u16::from(input.u8()) % 125;
    let mut segments = Vec::new();
    while !input.is_empty() && segments.len() < 4 {
        let n = usize::from(input.u8());
        segments.push(input.take(n).to_vec());
    }
    let answers = segments.clone();
    let args = LinkArgs {
        port: "fuzz".into(),
        baud: 19_200,
        parity: Parity::Even,
        stop_bits: 1,
        unit,
        timeout_ms: 100,
        retries,
    };
    let board = Board { segments, next: 0, out: Vec::new(), at: 0, chunk };
    let mut link = Link::new(board, &args);
    RUNTIME.with(|rt| {
        rt.block_on(async {
            match op % 3 {
                0 => match link.read_holding(addr, count).await {
                    Ok(Ok(values)) => {
                        assert_eq!(values.len(), usize::from(count));
                        let body: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
                        assert!(
                            frame_in(&answers, &[unit, 0x03, (2 * count) as u8], Some(&body)),
                            "{values:?} from no frame"
                        );
                    }
                    Ok(Err(code)) => {
                        assert!(frame_in(&answers, &[unit, 0x83, u8::from(code)], Some(&[])), "{code:?} from no frame")
                    }
                    Err(_) => {}
                },
                1 => {
                    let value = addr.rotate_left(3);
                    match link.write_single(addr, value).await {
                        Ok(Ok(())) => {
                            let mut echo = addr.to_be_bytes().to_vec();
                            echo.extend_from_slice(&value.to_be_bytes());
                            assert!(frame_in(&answers, &[unit, 0x06], Some(&echo)), "a write confirmed by no frame");
                        }
                        Ok(Err(code)) => assert!(frame_in(&answers, &[unit, 0x86, u8::from(code)], Some(&[]))),
                        Err(_) => {}
                    }
                }
                _ => {
                    let values: Vec<u16> = (0..count.min(123)).map(|k| addr ^ k).collect();
                    match link.write_multiple(addr, &values).await {
                        Ok(Ok(())) => {
                            let mut echo = addr.to_be_bytes().to_vec();
                            echo.extend_from_slice(&(values.len() as u16).to_be_bytes());
                            assert!(frame_in(&answers, &[unit, 0x10], Some(&echo)), "a write confirmed by no frame");
                        }
                        Ok(Err(code)) => assert!(frame_in(&answers, &[unit, 0x90, u8::from(code)], Some(&[]))),
                        Err(_) => {}
                    }
                }
            }
        })
    });
    let c = link.counters();
    assert!(c.requests <= u64::from(retries) + 1, "{} tries with {retries} retries", c.requests);
});
