//! `smartpro-sim serve`: the live twin as a Modbus RTU slave on a pty or a serial port.

use std::path::PathBuf;

use anyhow::Context;
use firmware_core::modbus::rtu::Parity;
use tokio_serial::SerialPort;

use super::exit;
use crate::engine::Engine;
use crate::scenario::Scenario;

/// A battery resting at 60 % SOC: the built-in profile when no scenario is given.
pub const IDLE_SCENARIO: &str = r#"
name = "idle"
description = "built-in: a battery at rest"
variant = 12
seed = 1
initial_soc = 0.6
[firmware]
initial_soc_pct = 60.0
[[segment]]
kind = "rest"
duration_s = 1
"#;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ParityArg {
    None,
    Even,
    Odd,
}

#[derive(Debug, clap::Args)]
pub struct Cmd {
    /// Create a pseudo-terminal pair and serve on it; prints the path to open.
    #[arg(long, conflicts_with = "port", required_unless_present = "port", help_heading = "Transport")]
    pub pty: bool,
    /// Also make a symlink at PATH to the pty (replaced if it is a symlink already).
    #[arg(long, requires = "pty", help_heading = "Transport")]
    pub link: Option<PathBuf>,
    /// Serve a real serial port (e.g. /dev/ttyUSB0 on a USB-RS485 adapter).
    #[arg(long, help_heading = "Transport")]
    pub port: Option<String>,
    /// Baud rate (sets the 3.5-character frame gap; a pty itself ignores it).
    #[arg(long, default_value_t = 19_200, help_heading = "Transport")]
    pub baud: u32,
    #[arg(long, value_enum, default_value = "even", help_heading = "Transport")]
    pub parity: ParityArg,
    /// Stop bits: 1 or 2.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2), help_heading = "Transport")]
    pub stop_bits: u8,
    /// Modbus unit id the board answers (1..=247); overrides the scenario's.
    #[arg(long, value_parser = clap::value_parser!(u8).range(1..=247))]
    pub unit: Option<u8>,
    /// Keep the board's settings EEPROM in FILE: loaded at start if it exists,
    /// rewritten whenever a Modbus write changes a setting.
    #[arg(long, value_name = "FILE")]
    pub nvm: Option<PathBuf>,
    /// Scenario driving the battery (its segments, then rest); default: a 12 V battery at rest.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
}

pub fn execute(cmd: &Cmd) -> u8 {
    let scenario = match &cmd.scenario {
        Some(p) => Scenario::load(p),
        None => Scenario::parse(IDLE_SCENARIO, std::path::Path::new("<idle>")),
    };
    let mut scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    if let Some(u) = cmd.unit {
        scenario.firmware.unit = u;
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::RUNTIME;
        }
    };
    rt.block_on(serve_main(cmd, scenario))
}

async fn serve_main(cmd: &Cmd, scenario: Scenario) -> u8 {
    let image = match cmd.nvm.as_deref().map(crate::serve::read_nvm_file).transpose() {
        Ok(image) => image.flatten(),
        Err(e) => {
            eprintln!("error: --nvm {}: {e}", cmd.nvm.as_deref().unwrap_or_else(|| std::path::Path::new("")).display());
            return exit::BAD_INPUT;
        }
    };
    let mut engine = match Engine::with_nvm(&scenario, image) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {}: {e}", scenario.name);
            return exit::BAD_INPUT;
        }
    };
    let parity = match cmd.parity {
        ParityArg::None => Parity::None,
        ParityArg::Even => Parity::Even,
        ParityArg::Odd => Parity::Odd,
    };
    let mut rtu = *engine.board().rtu().config();
    rtu.baud = cmd.baud;
    rtu.parity = parity;
    rtu.stop_bits = cmd.stop_bits;
    engine.board_mut().rtu_set_config(rtu);
    let framing = format!("{} {}{}{}", cmd.baud, 8, parity_letter(parity), cmd.stop_bits);
    let unit = scenario.firmware.unit;

    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let result = if cmd.pty {
        let (master, slave) = match tokio_serial::SerialStream::pair().context("creating a pseudo-terminal pair") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                return exit::RUNTIME;
            }
        };
        // Keep `slave` open for the whole session: dropping it closes the pty.
        let path = slave.name().unwrap_or_default();
        if let Some(link) = &cmd.link {
            if let Err(e) = make_link(&path, link) {
                eprintln!("error: {e:#}");
                return exit::BAD_INPUT;
            }
            println!("serving unit {unit} on {path} (link {}), {framing} framing; Ctrl-C stops", link.display());
        } else {
            println!("serving unit {unit} on {path}, {framing} framing; Ctrl-C stops");
        }
        let r = crate::serve::serve(master, &scenario, engine, cmd.nvm.as_deref(), shutdown).await;
        if let Some(link) = &cmd.link {
            let _ = std::fs::remove_file(link);
        }
        drop(slave);
        r
    } else {
        let dev = cmd.port.clone().unwrap_or_default();
        let builder = tokio_serial::new(&dev, cmd.baud)
            .data_bits(tokio_serial::DataBits::Eight)
            .parity(match parity {
                Parity::None => tokio_serial::Parity::None,
                Parity::Even => tokio_serial::Parity::Even,
                Parity::Odd => tokio_serial::Parity::Odd,
            })
            .stop_bits(if cmd.stop_bits == 2 { tokio_serial::StopBits::Two } else { tokio_serial::StopBits::One });
        let port = match tokio_serial::SerialStream::open(&builder) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: cannot open serial port {dev}: {e}");
                return exit::BAD_INPUT;
            }
        };
        println!("serving unit {unit} on {dev}, {framing}; Ctrl-C stops");
        crate::serve::serve(port, &scenario, engine, cmd.nvm.as_deref(), shutdown).await
    };
    match result {
        Ok(r) => {
            print_report(&r);
            exit::OK
        }
        Err((e, r)) => {
            eprintln!("error: {e}");
            print_report(&r);
            exit::RUNTIME
        }
    }
}

fn parity_letter(p: Parity) -> char {
    match p {
        Parity::None => 'N',
        Parity::Even => 'E',
        Parity::Odd => 'O',
    }
}

fn make_link(target: &str, link: &std::path::Path) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if !meta.file_type().is_symlink() {
            anyhow::bail!("--link {}: exists and is not a symlink; not replacing it", link.display());
        }
        std::fs::remove_file(link).with_context(|| format!("removing old link {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link).with_context(|| format!("creating link {} -> {target}", link.display()))
}

fn print_report(r: &crate::serve::ServeReport) {
    let c = &r.counters;
    println!(
        "served {:.1} s: {} bytes in, {} replies; bus messages {}, CRC errors {}, exceptions {}, broadcasts {}, other units {}",
        r.simulated_s,
        r.bytes_in,
        r.replies,
        c.bus_messages,
        c.crc_errors,
        c.exceptions_sent,
        c.no_responses,
        c.ignored_other_unit
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_idle_scenario_is_valid() {
        let s = Scenario::parse(IDLE_SCENARIO, std::path::Path::new("<idle>")).unwrap();
        Engine::new(&s).unwrap();
    }
}
