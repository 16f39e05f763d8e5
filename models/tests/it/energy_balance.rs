//! Issue 4, closed forms: the energy balance of a full discharge. Energy
//! out of the cells' OCV = energy into the load + every loss (cell R0, RC
//! pairs, hysteresis, switch, shunt) + energy still stored in the RC
//! capacitors, within 0.1 %.

use models::chain::{ChainParams, MeasurementChain};
use models::loads::{Gate, Load, Thevenin};
use models::pack::{Pack, PackParams};
use models::rng::SeedStreams;
use models::switch::{Switch, SwitchParams, SwitchState};
use models::variant::Variant;

#[test]
fn issue_4_full_discharge_energy_balance() {
    let v = Variant::V12;
    let streams = SeedStreams::new(4);
    let mut pack = Pack::new(&PackParams::default(), v, 1.0, &mut streams.stream("pack"));
    let switch = Switch::new(&SwitchParams::default(), v, &mut streams.stream("switch"));
    let chain = MeasurementChain::new(&ChainParams::default(), v, &streams);
    let load = Load::Resistive { resistance_ohm: 0.25 };
    let t = 25.0;
    let r_ext = switch.r_on_ohm(t) + chain.shunt().resistance_ohm(t);
    let dt = 1.0;
    let (mut chem, mut into_load, mut losses) = (0.0, 0.0, 0.0);
    let mut steps = 0;
    loop {
        let th = Thevenin { emf_v: pack.terminal_voltage_v(0.0), r_ohm: pack.r0_total_ohm() + r_ext };
        let i = load.current_a(&th, Gate::OPEN);
        if th.voltage_v(i) < 11.2 {
            break;
        }
        let ocv0 = pack.ocv_v();
        let cell_heat0 = pack.irreversible_heat_w(i);
        pack.step(dt, i);
        let ocv1 = pack.ocv_v();
        let cell_heat1 = pack.irreversible_heat_w(i);
        // trapezoid over the step for the slowly moving terms
        chem += -i * 0.5 * (ocv0 + ocv1) * dt;
        let v_term = 0.5 * (th.emf_v + pack.terminal_voltage_v(0.0)) + i * pack.r0_total_ohm();
        let v_load = v_term + i * r_ext;
        into_load += -i * v_load * dt;
        let ext = switch.power_w(SwitchState::On, i, t) + chain.shunt_power_w(i, t);
        losses += (0.5 * (cell_heat0 + cell_heat1) + ext) * dt;
        steps += 1;
    }
    let stored = pack.rc_energy_j();
    let balance = into_load + losses + stored;
    let rel = (chem - balance) / chem;
    assert!(pack.soc() < 0.05, "discharged to {}", pack.soc());
    assert!(steps > 6000, "{steps} s");
    assert!(rel.abs() < 1e-3, "chem {chem:.1} J vs load+losses+stored {balance:.1} J ({rel:e})");
    // the losses are a few percent of the energy, not a rounding error
    assert!(losses / chem > 0.01, "{}", losses / chem);
}
