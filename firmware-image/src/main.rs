//! Example SmartPro-209 firmware image for the board's Cortex-M4F
//! (thumbv7em-none-eabihf).
//!
//! It exists to measure what `firmware-core` costs on the target (flash, RAM)
//! and to prove at link time that no panic path is reachable from the board's
//! entry points — everything the board's main loop calls (docs/firmware.md):
//! the settings store's load at boot and save after a settings change
//! (`nvm::SettingsStore` on the EEPROM), [`Board::poll`], [`Board::sample`],
//! [`Board::sample_sums`], [`Board::poll_at`], the register accesses with the
//! commands and calibration commands, the Modbus RTU path (`rtu_receive` →
//! frame → PDU → register map → `rtu_poll`) and the PDU path of another
//! transport ([`Board::process_pdu`]). There is no hardware access: ADC codes,
//! time, the EEPROM's bytes and the bytes on the serial line are made up from a
//! counter and hidden from the optimiser with [`black_box`], so every branch of
//! the linked code stays reachable.
//!
//! The panic check: the `#[panic_handler]` below calls a function that is
//! declared but defined nowhere. With LTO, a panic handler that nothing calls
//! is dropped, and so is its reference to that symbol; if any panic path
//! survives optimisation, the link fails with
//! `undefined symbol: smartpro_panic_path_is_reachable`.
#![no_std]
#![no_main]
#![deny(unsafe_code)]

use core::hint::black_box;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use firmware_core::board::CodeSums;
use firmware_core::modbus::MAX_ADU_LEN;
use firmware_core::modbus::frame::emit_frame;
use firmware_core::modbus::rtu::RtuConfig;
use firmware_core::nvm::{Nvm, STORE_LEN, SettingsStore};
use firmware_core::{Board, Inputs, Instant, Settings, Variant};

/// One ADC conversion per millisecond (1 kSPS).
const SAMPLE_PERIOD_NS: u64 = 1_000_000;
/// Silence after a request before `rtu_poll`: more than t3.5 at 19200 baud (~2 ms).
const RTU_GAP_NS: u64 = 5_000_000;

#[entry]
fn main() -> ! {
    // The board's state and buffers live in static RAM (.data/.bss), where the
    // linker counts them and checks they fit, rather than in main's stack frame. cortex-m-rt
    // turns these into `&'static mut` handed to this function alone (safe:
    // `main` runs once), so they are owned by `main`, not shared globals.
    static mut BOARD: Option<Board> = None;
    static mut TX: [u8; MAX_ADU_LEN] = [0; MAX_ADU_LEN];
    static mut ADU: [u8; MAX_ADU_LEN] = [0; MAX_ADU_LEN];
    // The response PDU of another transport (`process_pdu` wants ≥ 253 bytes).
    static mut PDU_RESPONSE: [u8; MAX_ADU_LEN] = [0; MAX_ADU_LEN];
    // The settings EEPROM's contents (a real board reads them over I²C/SPI).
    static mut EEPROM: [u8; STORE_LEN] = [0xFF; STORE_LEN];

    let variant = black_box(Variant::V24);
    let rtu = RtuConfig::default();
    let unit = rtu.unit_id;
    // Boot: the newest valid settings record, or the defaults (a blank or corrupt EEPROM).
    let store = SettingsStore::new(variant);
    let mut eeprom = Eeprom { bytes: EEPROM };
    let settings = match store.load(&mut eeprom) {
        Ok(loaded) => loaded.settings,
        Err(_) => Settings::defaults(variant),
    };
    let Some(board) = make_board(BOARD, variant, settings, rtu) else {
        // Stored settings are checked on load; a real image would fall back to safe outputs here.
        halt()
    };
    let (tx, adu, pdu_response) = (TX, ADU, PDU_RESPONSE);

    let mut tick: u32 = 0;
    let mut now_ns: u64 = 0;
    let mut pdu = [0u8; 16];
    let mut regs = [0u16; 8];

    loop {
        tick = tick.wrapping_add(1);
        // Monotonic time from a counter: the firmware core never reads a clock.
        now_ns = now_ns.saturating_add(black_box(SAMPLE_PERIOD_NS));
        let now = Instant::from_nanos(now_ns);

        // 1. One ADC conversion: raw codes the optimiser cannot predict.
        let t = black_box(tick);
        let inputs = Inputs {
            current_code: black_box((t as i32).wrapping_mul(97) >> 8),
            voltage_code: black_box(5_800_000 + (t & 0xFFFF) as i32),
            temperature_code: black_box(1 << 22),
            lvp_input_ok: black_box(t & 0x100 == 0),
            ovp_input_ok: black_box(t & 0x200 == 0),
            sc_latched: black_box(t & 0x400 != 0),
            aux_overcurrent: black_box(t & 0x800 != 0),
        };
        let outputs = board.poll(now, &inputs);
        black_box(outputs);
        // The ADC-interrupt path as well: block sums, polled every 10 ms.
        black_box(board.sample(now, &inputs));
        // A block summed elsewhere (a hardware oversampler): sums the optimiser cannot predict.
        let sums = CodeSums {
            conversions: black_box(t % 16 + 1),
            current_code_sum: black_box(i64::from(inputs.current_code) * 16),
            voltage_code_sum: black_box(i64::from(inputs.voltage_code) * 16),
        };
        black_box(board.sample_sums(now, &sums, &inputs));
        black_box(board.poll_at());

        // 2. A Modbus request through the whole RTU path: bytes in, silence, reply out.
        let n = request(black_box(tick), &mut pdu);
        if let Some(len) = pdu.get(..n).and_then(|p| emit_frame(black_box(unit), p, adu)) {
            // The line may corrupt anything: hide the bytes and the length.
            let len = black_box(len);
            if let Some(rx) = black_box(&*adu).get(..len) {
                board.rtu_receive(now, rx);
            }
        }
        let later = Instant::from_nanos(now_ns.saturating_add(RTU_GAP_NS));
        if let Some(reply_len) = board.rtu_poll(later, tx) {
            black_box(tx.get(..reply_len));
        }
        // The same request as a PDU of another transport (Modbus TCP: the MBAP header is the caller's).
        if let Some(request) = black_box(&pdu[..]).get(..black_box(n)) {
            black_box(board.process_pdu(request, pdu_response));
        }

        // 3. Direct register access, as a local display or the NVM task would.
        let addr = black_box((tick % 0x500) as u16);
        let count = black_box((tick % 8) as usize + 1);
        if let Some(out) = regs.get_mut(..count) {
            black_box(board.read_registers(addr, out)).ok();
        }
        black_box(&regs);
        let values = [black_box((tick % 60_000) as u16), black_box(12_000)];
        let count = black_box((tick % 2) as usize + 1);
        if let Some(v) = values.get(..count) {
            black_box(board.write_registers(black_box(0x0200 + (tick % 8) as u16), v)).ok();
        }
        // Commands and calibration commands (set SOC, clear faults, reset counters, unlock, zero,
        // current and voltage gain: 0x0400..=0x0407), as a service tool would send them.
        let command = [black_box(0xCA1B), black_box((tick >> 3) as u16)];
        if let Some(v) = command.get(..count) {
            black_box(board.write_registers(black_box(0x0400 + (tick % 8) as u16), v)).ok();
        }

        // 4. Settings changed by a write: saved to the EEPROM outside the reply path.
        if board.take_settings_changed() {
            let settings = *board.settings();
            black_box(store.save(&mut eeprom, &settings)).ok();
        }

        #[cfg(feature = "prove-check-works")]
        {
            // A deliberate panic path: an index the compiler cannot bound.
            // With this feature the link must fail (see .ci/firmware-image.sh).
            black_box(regs[black_box(tick as usize)]);
        }
    }
}

/// Builds the board into `slot`, in a function of its own: the temporaries of the
/// construction then live in its stack frame, not for ever in `main`'s.
#[inline(never)]
fn make_board(slot: &mut Option<Board>, variant: Variant, settings: Settings, rtu: RtuConfig) -> Option<&mut Board> {
    *slot = Board::new(variant, settings, black_box(2_090_001), rtu).ok();
    slot.as_mut()
}

/// The settings EEPROM as its driver presents it to the store: bytes that the
/// optimiser cannot predict (a real part returns whatever it holds).
struct Eeprom {
    bytes: &'static mut [u8; STORE_LEN],
}

/// The EEPROM driver's error: an access beyond the part.
#[derive(Clone, Copy, Debug)]
struct OutOfRange;

impl Nvm for Eeprom {
    type Error = OutOfRange;

    fn capacity(&self) -> usize {
        STORE_LEN
    }

    fn read(&mut self, offset: usize, buf: &mut [u8]) -> Result<(), OutOfRange> {
        let end = offset.checked_add(buf.len()).ok_or(OutOfRange)?;
        let bytes = black_box(&*self.bytes).get(offset..end).ok_or(OutOfRange)?;
        for (b, &byte) in buf.iter_mut().zip(bytes) {
            *b = byte;
        }
        Ok(())
    }

    fn write(&mut self, offset: usize, data: &[u8]) -> Result<(), OutOfRange> {
        let end = offset.checked_add(data.len()).ok_or(OutOfRange)?;
        let bytes = self.bytes.get_mut(offset..end).ok_or(OutOfRange)?;
        for (b, &byte) in bytes.iter_mut().zip(data) {
            *b = byte;
        }
        black_box(&*self.bytes);
        Ok(())
    }
}

/// Writes one of the board's supported requests (FC03, FC04, FC06, FC16) into
/// `pdu`, chosen and filled from `tick`; returns its length.
fn request(tick: u32, pdu: &mut [u8; 16]) -> usize {
    let [a_hi, a_lo] = ((tick >> 2) as u16 % 0x0500).to_be_bytes();
    let qty = (tick >> 4) as u8 % 10;
    let [v_hi, v_lo] = (tick as u16).to_be_bytes();
    match tick % 4 {
        0 => {
            *pdu = [0x03, a_hi, a_lo, 0, qty, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            5
        }
        1 => {
            *pdu = [0x04, a_hi, a_lo, 0, qty, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            5
        }
        2 => {
            *pdu = [0x06, a_hi, a_lo, v_hi, v_lo, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
            5
        }
        _ => {
            // Two registers, four data bytes.
            *pdu = [0x10, a_hi, a_lo, 0, 2, 4, v_hi, v_lo, v_lo, v_hi, 0, 0, 0, 0, 0, 0];
            10
        }
    }
}

fn halt() -> ! {
    loop {
        core::hint::spin_loop();
    }
}

// The link-time panic check, and the only `unsafe` in this crate: calling a
// foreign function is `unsafe` (and edition 2024 wants `unsafe extern`), and
// there is no safe way to reference a symbol that must stay undefined.
// `firmware-core` itself stays `#![forbid(unsafe_code)]`.
#[cfg(not(feature = "find-panics"))]
#[allow(unsafe_code)]
mod panic_check {
    unsafe extern "C" {
        /// Defined nowhere, on purpose: a reference to it is a reachable panic.
        fn smartpro_panic_path_is_reachable() -> !;
    }

    #[panic_handler]
    fn panic(_info: &super::PanicInfo) -> ! {
        // SAFETY: never runs: if this call survives LTO the image does not link.
        unsafe { smartpro_panic_path_is_reachable() }
    }
}

/// With `find-panics` the image links even with panic paths, so that
/// .ci/firmware-image.sh can list the call sites of the panic functions.
#[cfg(feature = "find-panics")]
#[panic_handler]
fn panic(_info: &PanicInfo) -> ! {
    halt()
}
