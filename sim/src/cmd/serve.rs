//! `smartpro-sim serve`: the live twin as Modbus RTU slaves on a pty, a serial
//! port or RTU over TCP, and/or as a Modbus TCP server; see `docs/serve.md`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use firmware_core::modbus::rtu::RtuConfig;

use super::exit::{self, Exit};
use crate::scenario::Scenario;
use crate::serial::{self, Parity};
use crate::serve::faults::{FaultOverrides, FaultsConfig, Window};
use crate::serve::{IDLE_SCENARIO, Options, Pty, RtuLine, Transports};

/// `serve`'s exit codes, for `--help`.
pub const EXIT_CODES: &exit::Table = &[
    (Exit::Ok, "stopped by Ctrl-C, SIGTERM or --duration"),
    (
        Exit::BadInput,
        "bad input: arguments (or their SMARTPRO_SIM_* variables), the scenario, faults file or NVM file, \
         a serial port that cannot be opened, an address that cannot be bound",
    ),
    (Exit::Runtime, "runtime failure: the pty failed, a model went non-finite, the frame log could not be written"),
];

/// The end of `serve --help`: the exit codes and what is not an error.
pub fn help() -> String {
    exit::help(EXIT_CODES)
        + "\n\nA serial port (--port) that vanishes is not an error: serve logs it, keeps the twin running and \
           reopens the device when it returns.\n\nThe line settings and units may come from the environment: \
           SMARTPRO_SIM_BAUD, SMARTPRO_SIM_PARITY, SMARTPRO_SIM_STOP_BITS, SMARTPRO_SIM_DATA_BITS, \
           SMARTPRO_SIM_UNITS (a flag wins)."
}

/// Where `--tcp` without a value listens: loopback, the customary unprivileged Modbus TCP port.
pub const DEFAULT_TCP: &str = "127.0.0.1:5020";

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("transport").required(true).multiple(true).args(["pty", "port", "rtu_tcp", "tcp"])))]
pub struct Cmd {
    #[command(flatten)]
    pub transport: Box<TransportArgs>,
    /// Baud rate (sets the 3.5-character frame gap; a pty itself ignores it unless --line-timing).
    #[arg(long, default_value_t = 19_200, env = "SMARTPRO_SIM_BAUD", value_parser = serial::baud_parser(), help_heading = "Line")]
    pub baud: u32,
    /// Parity (the specification: even, or none with 2 stop bits).
    #[arg(long, default_value = "even", env = "SMARTPRO_SIM_PARITY", value_parser = serial::parity_parser(), help_heading = "Line")]
    pub parity: Parity,
    /// Stop bits: 1 or 2.
    #[arg(long, default_value_t = 1, env = "SMARTPRO_SIM_STOP_BITS", value_parser = serial::stop_bits_parser(), help_heading = "Line")]
    pub stop_bits: u8,
    /// Data bits: 8 (Modbus RTU), or 7 (timing only: RTU bytes need 8).
    #[arg(long, default_value_t = 8, env = "SMARTPRO_SIM_DATA_BITS", value_parser = serial::data_bits_parser(), help_heading = "Line")]
    pub data_bits: u8,
    /// Pace the RTU line at the baud rate: requests arrive and replies leave as fast as the real line would carry them.
    #[arg(long, help_heading = "Line")]
    pub line_timing: bool,

    /// Modbus unit ids to serve, e.g. 1,2,3: independent twins (seed + index) on one bus; default the scenario's.
    #[arg(long, visible_alias = "unit", value_name = "ID,...", value_delimiter = ',', env = "SMARTPRO_SIM_UNITS",
          value_parser = serial::unit_parser(), help_heading = "Twin")]
    pub units: Vec<u8>,
    /// Scenario driving the battery (its segments, then rest); default: a 12 V battery at rest.
    #[arg(long, value_name = "FILE", help_heading = "Twin")]
    pub scenario: Option<PathBuf>,
    /// Simulated seconds per wall-clock second (the RTU line keeps real time).
    #[arg(long, default_value_t = 1.0, value_parser = parse_speed, help_heading = "Twin")]
    pub speed: f64,
    /// Keep each board's settings EEPROM in FILE (FILE.uN per unit when several): loaded at start, rewritten on every change.
    #[arg(long, value_name = "FILE", help_heading = "Twin")]
    pub nvm: Option<PathBuf>,
    /// Stop after this many wall-clock seconds (default: until Ctrl-C or SIGTERM).
    #[arg(long, value_name = "S", value_parser = serial::duration_parser(), help_heading = "Twin")]
    pub duration: Option<f64>,

    #[command(flatten)]
    pub faults: Box<FaultArgs>,

    /// Write every request and reply, timestamped and decoded, to FILE (a bus monitor's view).
    #[arg(long, value_name = "FILE", help_heading = "Logging")]
    pub log_frames: Option<PathBuf>,
}

/// Where to serve (boxed in [`Cmd`] to keep the subcommand enum small).
#[derive(Debug, clap::Args)]
pub struct TransportArgs {
    /// Create a pseudo-terminal pair and serve RTU on it; prints the path to open.
    #[arg(long, conflicts_with_all = ["port", "rtu_tcp"], help_heading = "Transport")]
    pub pty: bool,
    /// Also make a symlink at PATH to the pty (replaced if it is a symlink already).
    #[arg(long, requires = "pty", help_heading = "Transport")]
    pub link: Option<PathBuf>,
    /// Serve RTU on a serial port (e.g. /dev/ttyUSB0 on a USB-RS485 adapter); reopened if it vanishes and returns.
    #[arg(short = 'p', long, value_name = "DEVICE", conflicts_with = "rtu_tcp", help_heading = "Transport")]
    pub port: Option<PathBuf>,
    /// Serve RTU frames over TCP at ADDR:PORT (or PORT on 127.0.0.1); one client at a time, the newest wins.
    #[arg(long, value_name = "ADDR:PORT", value_parser = parse_addr, help_heading = "Transport")]
    pub rtu_tcp: Option<SocketAddr>,
    /// Serve Modbus TCP at ADDR:PORT (or PORT on 127.0.0.1); without a value 127.0.0.1:5020. Combines with an RTU line.
    #[arg(long, value_name = "ADDR:PORT", num_args = 0..=1, default_missing_value = DEFAULT_TCP,
          value_parser = parse_addr, help_heading = "Transport")]
    pub tcp: Option<SocketAddr>,
    /// Modbus TCP: connections open at once; one more is closed as soon as it is accepted.
    #[arg(long, value_name = "N", default_value_t = crate::serve::TcpLimits::DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::TypedValueParser::map(clap::value_parser!(u16).range(1..=1024), usize::from),
          help_heading = "Transport")]
    pub tcp_max_connections: usize,
    /// Modbus TCP: a connection that sends no request for S seconds is closed.
    #[arg(long, value_name = "S", default_value_t = crate::serve::TcpLimits::DEFAULT_IDLE_TIMEOUT.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..=86_400), help_heading = "Transport")]
    pub tcp_idle_timeout: u64,
}

/// The `--fault*` flags (boxed in [`Cmd`] to keep the subcommand enum small).
#[derive(Debug, clap::Args)]
pub struct FaultArgs {
    /// Bus faults from the [faults] section of a TOML file (see docs/serve.md).
    #[arg(long, value_name = "FILE", help_heading = "Faults")]
    pub faults: Option<PathBuf>,
    /// Seed of the fault streams (overrides the file's).
    #[arg(long, value_name = "N", help_heading = "Faults")]
    pub fault_seed: Option<u64>,
    /// Units the --fault-* flags apply to (default: all).
    #[arg(long, value_name = "ID,...", value_delimiter = ',', value_parser = serial::unit_parser(), help_heading = "Faults")]
    pub fault_units: Vec<u8>,
    /// Delay every reply: MS or MS+JITTER (uniform 0..JITTER ms added).
    #[arg(long, value_name = "MS[+JITTER]", value_parser = parse_delay, help_heading = "Faults")]
    pub fault_delay: Option<(f64, f64)>,
    /// Probability that a reply is lost (the request was executed).
    #[arg(long, value_name = "P", value_parser = parse_probability, help_heading = "Faults")]
    pub fault_drop: Option<f64>,
    /// Probability that a reply has a corrupted CRC.
    #[arg(long, value_name = "P", value_parser = parse_probability, help_heading = "Faults")]
    pub fault_crc: Option<f64>,
    /// Probability that a reply carries the wrong unit id (unit + 1).
    #[arg(long, value_name = "P", value_parser = parse_probability, help_heading = "Faults")]
    pub fault_wrong_unit: Option<f64>,
    /// Answer exception CODE instead of executing, with probability P: CODE:P, e.g. 6:0.1
    /// (a code Modbus defines: 1–8, 10, 11).
    #[arg(long, value_name = "CODE:P", value_parser = parse_exception, help_heading = "Faults")]
    pub fault_exception: Option<(u8, f64)>,
    /// The unit is off the bus from FROM to TO simulated seconds: FROM-TO (repeatable).
    #[arg(long, value_name = "FROM-TO", value_parser = parse_window, help_heading = "Faults")]
    pub fault_offline: Vec<Window>,
    /// Probability that each reply byte is garbled.
    #[arg(long, value_name = "RATE", value_parser = parse_probability, help_heading = "Faults")]
    pub fault_garble: Option<f64>,
}

fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    if let Ok(port) = s.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse().map_err(|_| format!("{s:?} is not ADDR:PORT (e.g. 127.0.0.1:5020) or a port number"))
}

fn parse_speed(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(k) if k.is_finite() && k > 0.0 && k <= 100_000.0 => Ok(k),
        _ => Err(format!("{s:?}: the speed must be a number in (0, 100000]")),
    }
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("{s:?}: a probability is a number within 0..=1")),
    }
}

fn parse_ms(s: &str) -> Result<f64, String> {
    match s.trim_end_matches("ms").parse::<f64>() {
        Ok(v) if (0.0..=60_000.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?}: a delay is a number of ms within 0..=60000")),
    }
}

fn parse_delay(s: &str) -> Result<(f64, f64), String> {
    match s.split_once('+') {
        Some((d, j)) => Ok((parse_ms(d)?, parse_ms(j)?)),
        None => Ok((parse_ms(s)?, 0.0)),
    }
}

fn parse_exception(s: &str) -> Result<(u8, f64), String> {
    let (code, p) = s.split_once(':').ok_or_else(|| format!("{s:?}: expected CODE:P, e.g. 6:0.1"))?;
    let code = code.trim_start_matches("0x");
    let code = u8::from_str_radix(code, if s.starts_with("0x") { 16 } else { 10 })
        .map_err(|_| format!("{s:?}: the exception code is not a number"))?;
    crate::serve::faults::check_exception_code(code).map_err(|e| format!("{s:?}: {e}"))?;
    Ok((code, parse_probability(p)?))
}

fn parse_window(s: &str) -> Result<Window, String> {
    let bad = || format!("{s:?}: expected FROM-TO in simulated seconds, e.g. 10-20");
    let (a, b) = s.split_once('-').ok_or_else(bad)?;
    let (from_s, to_s) = (a.parse::<f64>().map_err(|_| bad())?, b.parse::<f64>().map_err(|_| bad())?);
    if !(from_s.is_finite() && to_s.is_finite() && 0.0 <= from_s && from_s < to_s) {
        return Err(bad());
    }
    Ok(Window { from_s, to_s })
}

pub fn execute(cmd: &Cmd) -> u8 {
    let scenario = match &cmd.scenario {
        Some(p) => Scenario::load(p),
        None => Scenario::parse(IDLE_SCENARIO, Path::new("<idle>")),
    };
    let scenario = match scenario {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return exit::BAD_INPUT;
        }
    };
    let opts = match options(cmd, &scenario) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e:#}");
            return exit::BAD_INPUT;
        }
    };
    if cmd.data_bits != 8 {
        eprintln!("warning: --data-bits 7: Modbus RTU needs 8 data bits; only the frame timing uses 7");
    }
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return exit::RUNTIME;
        }
    };
    rt.block_on(serve_main(cmd, scenario, opts))
}

/// The serve options from the flags (everything but the transports).
fn options(cmd: &Cmd, scenario: &Scenario) -> anyhow::Result<Options> {
    let units = if cmd.units.is_empty() { vec![scenario.firmware.unit] } else { cmd.units.clone() };
    for (i, u) in units.iter().enumerate() {
        if units[..i].contains(u) {
            anyhow::bail!("--units: unit {u} is listed twice");
        }
    }
    let f = &cmd.faults;
    let faults = match &f.faults {
        Some(p) => FaultsConfig::load(p).map_err(anyhow::Error::msg)?,
        // The scenario's own [faults] section, if any.
        None => scenario.faults.clone(),
    };
    let overrides = FaultOverrides {
        units: f.fault_units.clone(),
        delay_ms: f.fault_delay,
        drop_probability: f.fault_drop,
        crc_error_probability: f.fault_crc,
        wrong_unit_probability: f.fault_wrong_unit,
        exception: f.fault_exception,
        garble_byte_rate: f.fault_garble,
        offline: f.fault_offline.clone(),
    };
    if !f.fault_units.is_empty() && overrides.is_empty() {
        anyhow::bail!("--fault-units without any --fault-* flag");
    }
    // Checked here so that a bad combination is a bad-input exit before anything is opened.
    faults.resolve(&units, &overrides).map_err(anyhow::Error::msg)?;
    let mut opts = Options::new(units);
    opts.speed = cmd.speed;
    opts.line = RtuConfig {
        baud: cmd.baud,
        parity: cmd.parity,
        stop_bits: cmd.stop_bits,
        data_bits: cmd.data_bits,
        ..RtuConfig::default()
    };
    opts.line_timing = cmd.line_timing;
    opts.faults = faults;
    opts.fault_overrides = overrides;
    opts.fault_seed = f.fault_seed;
    opts.nvm = cmd.nvm.clone();
    opts.log_frames = cmd.log_frames.clone();
    Ok(opts)
}

async fn shutdown_signal(duration: Option<f64>) {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    let timer = async {
        match duration {
            Some(d) => tokio::time::sleep(Duration::from_secs_f64(d)).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
        _ = timer => {}
    }
}

fn serial_builder(cmd: &Cmd, dev: &Path) -> tokio_serial::SerialPortBuilder {
    serial::port_builder(&dev.to_string_lossy(), cmd.baud, cmd.data_bits, cmd.parity, cmd.stop_bits)
}

async fn serve_main(cmd: &Cmd, scenario: Scenario, opts: Options) -> u8 {
    let framing = serial::mode(cmd.baud, cmd.data_bits, cmd.parity, cmd.stop_bits);
    let units = opts.units.iter().map(u8::to_string).collect::<Vec<_>>().join(",");
    let mut transports = Transports::default();
    let mut lines = Vec::new();
    if cmd.transport.pty {
        // serve holds the slave side for the whole session and keeps it reopenable (serve::Pty).
        let pty = match Pty::open().context("creating a pseudo-terminal pair") {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: {e:#}");
                return exit::RUNTIME;
            }
        };
        let path = pty.path().to_string_lossy().into_owned();
        if let Some(link) = &cmd.transport.link {
            if let Err(e) = make_link(&path, link) {
                eprintln!("error: {e:#}");
                return exit::BAD_INPUT;
            }
            lines.push(format!("RTU on {path} (link {}), {framing}", link.display()));
        } else {
            lines.push(format!("RTU on {path}, {framing}"));
        }
        transports.rtu = Some(RtuLine::Pty(Box::new(pty)));
    } else if let Some(dev) = &cmd.transport.port {
        let builder = serial_builder(cmd, dev);
        let port = match tokio_serial::SerialStream::open(&builder) {
            Ok(p) => p,
            Err(e) => {
                eprintln!("error: cannot open serial port {}: {e}", dev.display());
                return exit::BAD_INPUT;
            }
        };
        lines.push(format!("RTU on {}, {framing}", dev.display()));
        transports.rtu = Some(RtuLine::Serial { path: dev.clone(), builder, port });
    } else if let Some(addr) = cmd.transport.rtu_tcp {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                lines.push(format!("RTU over TCP on {}, {framing} timing", l.local_addr().unwrap_or(addr)));
                transports.rtu = Some(RtuLine::RtuTcp(l));
            }
            Err(e) => {
                eprintln!("error: --rtu-tcp {addr}: cannot listen: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    transports.tcp_limits = crate::serve::TcpLimits {
        max_connections: cmd.transport.tcp_max_connections,
        idle_timeout: std::time::Duration::from_secs(cmd.transport.tcp_idle_timeout),
        ..Default::default()
    };
    if let Some(addr) = cmd.transport.tcp {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(l) => {
                lines.push(format!("Modbus TCP on {}", l.local_addr().unwrap_or(addr)));
                transports.tcp = Some(l);
            }
            Err(e) => {
                eprintln!("error: --tcp {addr}: cannot listen: {e}");
                return exit::BAD_INPUT;
            }
        }
    }
    let speed = if opts.speed == 1.0 { String::new() } else { format!(" at {}x speed", opts.speed) };
    println!(
        "serving unit{} {units}{speed}: {}; Ctrl-C stops",
        if opts.units.len() > 1 { "s" } else { "" },
        lines.join("; ")
    );

    let result = crate::serve::serve(&scenario, &opts, transports, shutdown_signal(cmd.duration)).await;
    if let Some(link) = &cmd.transport.link {
        let _ = std::fs::remove_file(link);
    }
    match result {
        Ok(r) => {
            println!("{r}");
            if matches!(r.frame_log, Some(Err(_))) { exit::RUNTIME } else { exit::OK }
        }
        Err((e, r)) => {
            eprintln!("error: {e}");
            if e.is_bad_input() {
                return exit::BAD_INPUT;
            }
            println!("{r}");
            exit::RUNTIME
        }
    }
}

fn make_link(target: &str, link: &Path) -> anyhow::Result<()> {
    if let Ok(meta) = std::fs::symlink_metadata(link) {
        if !meta.file_type().is_symlink() {
            anyhow::bail!("--link {}: exists and is not a symlink; not replacing it", link.display());
        }
        std::fs::remove_file(link).with_context(|| format!("removing old link {}", link.display()))?;
    }
    std::os::unix::fs::symlink(target, link).with_context(|| format!("creating link {} -> {target}", link.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Engine;

    #[test]
    fn the_built_in_idle_scenario_is_valid() {
        let s = Scenario::parse(IDLE_SCENARIO, Path::new("<idle>")).unwrap();
        Engine::new(&s).unwrap();
    }

    #[test]
    fn flag_values_parse_or_say_why() {
        assert_eq!(parse_addr("5021").unwrap(), "127.0.0.1:5021".parse().unwrap());
        assert!(parse_addr("localhost").unwrap_err().contains("ADDR:PORT"));
        assert_eq!(parse_delay("20+5").unwrap(), (20.0, 5.0));
        assert_eq!(parse_delay("20ms").unwrap(), (20.0, 0.0));
        assert_eq!(parse_exception("6:0.25").unwrap(), (6, 0.25));
        assert_eq!(parse_exception("0x0b:1").unwrap(), (11, 1.0));
        assert!(parse_exception("0:0.1").is_err());
        // issue 17: codes Modbus does not define are refused, naming the defined ones.
        let e = parse_exception("99:0.1").unwrap_err();
        assert!(e.contains("99 is not a Modbus exception code") && e.contains("6 server device busy"), "{e}");
        assert!(parse_exception("9:0.1").is_err() && parse_exception("12:0.1").is_err());
        assert_eq!(parse_exception("10:0.5").unwrap(), (10, 0.5));
        assert_eq!(parse_window("10-20").unwrap(), Window { from_s: 10.0, to_s: 20.0 });
        assert!(parse_window("20-10").is_err());
        assert!(parse_probability("1.5").is_err());
        assert!(parse_speed("0").is_err());
    }
}
