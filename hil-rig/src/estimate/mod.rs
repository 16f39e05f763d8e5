//! Estimation from a board's measurements, on the twin's own battery
//! equations (`models`): used by `hil-rig fit` and `hil-rig compare`.
//!
//! | module | job |
//! |---|---|
//! | [`lm`] | Levenberg–Marquardt for any residual function; standard errors and correlations at the optimum |
//! | [`fit`] | the pack's equivalent circuit identified from a recording (`hil-rig fit`) |
//! | [`tracking`] | a Kalman filter bank that corrects the twin's SOC from the board's voltage (`hil-rig compare`) |

pub mod fit;
pub mod lm;
pub mod tracking;
