//! The live twin on a serial line: the engine paced to the wall clock, the
//! board's RTU slave fed with received bytes and their arrival times.
//!
//! The sim only moves bytes: framing, CRC, unit filtering and the register
//! map are the firmware's (`firmware_core::modbus`), as on the board.

use std::future::Future;
use std::path::Path;
use std::time::Duration;

use firmware_core::Instant;
use firmware_core::modbus::MAX_ADU_LEN;
use firmware_core::modbus::rtu::RtuCounters;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::engine::{Engine, EngineError, NvmImage, Stimulus};
use crate::scenario::Scenario;

/// Longest the loop sleeps without stepping the engine: the engine catches up
/// with the wall clock in batches of at most this much simulated time.
const MAX_BATCH: Duration = Duration::from_millis(5);

/// Why serving stopped other than by request.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("serial port read failed (port gone?): {0}")]
    Read(std::io::Error),
    #[error("serial port closed (end of file)")]
    Closed,
    #[error("serial port write failed (port gone?): {0}")]
    Write(std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// What a serve session did.
#[derive(Debug, Clone, Copy)]
pub struct ServeReport {
    pub simulated_s: f64,
    pub replies: u64,
    pub bytes_in: u64,
    pub counters: RtuCounters,
}

/// Serves `engine` on `port` until `shutdown` completes or the port fails.
/// The scenario's segments drive the battery; after the last one it rests.
/// Settings written over the bus are saved to the board's EEPROM, and the
/// EEPROM image to `nvm_file` if given, so they survive a restart.
pub async fn serve<P, F>(
    mut port: P,
    scenario: &Scenario,
    mut engine: Engine,
    nvm_file: Option<&Path>,
    shutdown: F,
) -> Result<ServeReport, (ServeError, ServeReport)>
where
    P: AsyncRead + AsyncWrite + Unpin,
    F: Future<Output = ()>,
{
    let start = tokio::time::Instant::now();
    let mut stimulus = Stimulus::new(scenario);
    let mut rx = [0u8; MAX_ADU_LEN];
    let mut tx = [0u8; MAX_ADU_LEN];
    let mut replies = 0u64;
    let mut bytes_in = 0u64;
    tokio::pin!(shutdown);
    let report = |engine: &Engine, replies, bytes_in| ServeReport {
        simulated_s: engine.t_s(),
        replies,
        bytes_in,
        counters: engine.board().rtu().counters(),
    };

    loop {
        let now = Instant(start.elapsed().as_nanos() as u64);
        if let Err(e) = catch_up(&mut engine, &mut stimulus, now) {
            return Err((e.into(), report(&engine, replies, bytes_in)));
        }
        if let Some(n) = engine.board_mut().rtu_poll(now, &mut tx) {
            let sent = async {
                port.write_all(&tx[..n]).await?;
                port.flush().await
            };
            if let Err(e) = sent.await {
                return Err((ServeError::Write(e), report(&engine, replies, bytes_in)));
            }
            replies += 1;
        }
        match engine.persist_settings() {
            Ok(true) => {
                if let Some(path) = nvm_file {
                    if let Err(e) = write_nvm_file(path, engine.nvm_image()) {
                        // Serving goes on: the settings are in the board; only the file copy is stale.
                        eprintln!("warning: saving the settings EEPROM to {}: {e}", path.display());
                    }
                }
            }
            Ok(false) => {}
            Err(e) => return Err((e.into(), report(&engine, replies, bytes_in))),
        }
        let next_ns = engine
            .board()
            .rtu_poll_at()
            .map_or(u64::MAX, |t| t.as_nanos())
            .min(now.as_nanos() + MAX_BATCH.as_nanos() as u64);
        let wake = start + Duration::from_nanos(next_ns);
        tokio::select! {
            read = port.read(&mut rx) => match read {
                Ok(0) => return Err((ServeError::Closed, report(&engine, replies, bytes_in))),
                Ok(n) => {
                    let arrived = Instant(start.elapsed().as_nanos() as u64);
                    if let Err(e) = catch_up(&mut engine, &mut stimulus, arrived) {
                        return Err((e.into(), report(&engine, replies, bytes_in)));
                    }
                    engine.board_mut().rtu_receive(arrived, &rx[..n]);
                    bytes_in += n as u64;
                }
                Err(e) => return Err((ServeError::Read(e), report(&engine, replies, bytes_in))),
            },
            _ = tokio::time::sleep_until(wake) => {}
            _ = &mut shutdown => return Ok(report(&engine, replies, bytes_in)),
        }
    }
}

/// Writes the EEPROM image next to `path`, then renames it into place, so a
/// crash never leaves a half-written file.
pub fn write_nvm_file(path: &Path, image: &NvmImage) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, image)?;
    std::fs::rename(&tmp, path)
}

/// Reads an EEPROM image written by [`write_nvm_file`]; `None` if the file does not exist.
pub fn read_nvm_file(path: &Path) -> std::io::Result<Option<NvmImage>> {
    match std::fs::read(path) {
        Ok(bytes) => NvmImage::try_from(bytes.as_slice()).map(Some).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} bytes, expected an EEPROM image of {}", bytes.len(), std::mem::size_of::<NvmImage>()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Steps the engine up to `now` in whole ADC periods.
fn catch_up(engine: &mut Engine, stimulus: &mut Stimulus<'_>, now: Instant) -> Result<(), EngineError> {
    while engine.t_ns() + engine.step_ns() <= now.as_nanos() {
        let (kind, amps) = stimulus.current(engine);
        engine.step(kind, amps)?;
    }
    Ok(())
}
