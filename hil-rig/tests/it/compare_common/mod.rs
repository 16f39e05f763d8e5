//! Shared by the compare tests: a stand-in board (`smartpro_sim::serve`, the
//! twin `smartpro-sim serve --pty` runs, in this process) on a pty pair, and
//! the real `hil-rig` binary run against it.

#![allow(dead_code)] // each test file uses a part

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use smartpro_sim::scenario::Scenario;
use smartpro_sim::serve::{Options, RtuLine, ServeError, ServeReport, Transports};
use tokio_serial::SerialPort;

/// Simulated seconds per wall-clock second of the stand-ins: a 2-minute
/// scenario in 6 s.
pub const SPEED: f64 = 20.0;

/// Simulated seconds per wall-clock second of the `hil-rig test` stand-ins:
/// a plan's 30 s rest and 60 s settle (board time) take about 2 s of wall time.
pub const PLAN_SPEED: f64 = 50.0;

/// A 12 V stand-in at rest for the whole of a `hil-rig test` run (100 Hz
/// ADC keeps debug builds fast).
pub const REST_STANDIN: &str = r#"
name = "plan-standin"
variant = 12
seed = 7
initial_soc = 0.6
adc_rate_hz = 100
[firmware]
initial_soc_pct = 60.0
[[segment]]
kind = "rest"
duration_s = 36000
"#;

/// A stand-in board at rest, then stepped loads and a charge (12 V, 100 Hz
/// ADC to keep debug builds fast: the firmware polls every 10 ms either way).
pub const SCENARIO: &str = r#"
name = "compare-standin"
variant = 12
seed = 7
initial_soc = 0.6
adc_rate_hz = 100
[firmware]
initial_soc_pct = 60.0
[[segment]]
kind = "rest"
duration_s = 30
[[segment]]
kind = "discharge"
current_a = 40.0
duration_s = 40
[[segment]]
kind = "rest"
duration_s = 20
[[segment]]
kind = "charge"
current_a = 25.0
duration_s = 40
[[segment]]
kind = "discharge"
current_a = 10.0
duration_s = 600
"#;

/// A scratch directory for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("hil-rig-compare-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes `text` as `dir/standin.toml`.
pub fn scenario_file(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("standin.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A stand-in board served on the master side of a pty pair, on a thread
/// (and runtime) of its own.
pub struct StandIn {
    /// The pty's slave path, for `hil-rig --port`.
    pub path: String,
    slave: Option<tokio_serial::SerialStream>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<ServeReport, String>>>,
    /// The timing tests' share of the machine, while the stand-in serves.
    _machine: smartpro_sim::testing::machine::Timing,
}

impl StandIn {
    /// Serves the scenario at `path` at [`SPEED`], with `opts` changed by `tweak`.
    pub fn start(path: &Path, tweak: impl FnOnce(&mut Options)) -> StandIn {
        let machine = smartpro_sim::testing::machine::timing();
        let scenario = Scenario::load(path).unwrap();
        let (master, slave) = tokio_serial::SerialStream::pair().expect("pty pair");
        let pty = slave.name().expect("pty name");
        let mut opts = Options::new(vec![1]);
        opts.speed = SPEED;
        tweak(&mut opts);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            rt.block_on(async move {
                let transports = Transports { rtu: Some(RtuLine::Stream(Box::new(master))), ..Transports::default() };
                smartpro_sim::serve::serve(&scenario, &opts, transports, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(|(e, _): (ServeError, ServeReport)| e.to_string())
            })
        });
        StandIn { path: pty, slave: Some(slave), stop: Some(stop), thread: Some(thread), _machine: machine }
    }

    /// Stops serving and closes the pty: to a client, the board vanished.
    pub async fn kill(mut self) {
        let _ = self.stop.take().expect("running").send(());
        let thread = self.thread.take().expect("running");
        let served = tokio::task::spawn_blocking(move || thread.join()).await.unwrap();
        assert!(matches!(served, Ok(Ok(_))), "the stand-in failed: {served:?}");
        drop(self.slave.take());
    }
}

/// Runs `hil-rig ARGS...` (clean environment) on the blocking pool, so the
/// stand-in keeps being served meanwhile.
pub async fn hil_rig(args: Vec<String>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_hil-rig"));
    cmd.args(&args).env_clear();
    tokio::task::spawn_blocking(move || cmd.output().expect("run hil-rig")).await.unwrap()
}

/// `["compare", "--port", pty, "--out", dir, ...extra]`.
pub fn compare_live(pty: &str, out: &Path, extra: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = ["compare", "--port", pty, "--out"].iter().map(|s| s.to_string()).collect();
    v.push(out.display().to_string());
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// `["test", plan, "--port", pty, "--out", dir, "--interval-ms", "100"]`: a plan against a stand-in.
pub fn test_plan_live(plan: &Path, pty: &str, out: &Path) -> Vec<String> {
    let plan = plan.display().to_string();
    let out = out.display().to_string();
    ["test", &plan, "--port", pty, "--out", &out, "--interval-ms", "100"].iter().map(|s| s.to_string()).collect()
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The whole output, for assertion messages.
pub fn show(out: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}\n--- stderr\n{}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// The report's row of a quantity: its cells.
pub fn row(report: &str, key: &str) -> Vec<String> {
    let line = report
        .lines()
        .find(|l| l.starts_with(&format!("| {key} |")))
        .unwrap_or_else(|| panic!("no row {key} in\n{report}"));
    line.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect()
}
