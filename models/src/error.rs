//! Parameter validation errors.

/// A parameter value outside its physical range (e.g. a negative capacity
/// from a scenario override). Constructors do not check; call the params'
/// `validate()` after loading a scenario.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("parameter `{name}` = {value} is invalid: must be {requirement}")]
pub struct ParamError {
    /// Field name, dotted for nested params (`"cell.capacity_ah"`).
    pub name: &'static str,
    /// The offending value.
    pub value: f64,
    /// What the value must be.
    pub requirement: &'static str,
}

/// `Err` unless `value` is finite and `> 0` (the check every `validate()` uses).
pub fn positive(name: &'static str, value: f64) -> Result<(), ParamError> {
    if value.is_finite() && value > 0.0 {
        Ok(())
    } else {
        Err(ParamError { name, value, requirement: "finite and > 0" })
    }
}

/// `Err` unless `value` is finite and `>= 0`.
pub fn non_negative(name: &'static str, value: f64) -> Result<(), ParamError> {
    if value.is_finite() && value >= 0.0 {
        Ok(())
    } else {
        Err(ParamError { name, value, requirement: "finite and >= 0" })
    }
}

/// `Err` unless `value` is finite.
pub(crate) fn finite(name: &'static str, value: f64) -> Result<(), ParamError> {
    if value.is_finite() { Ok(()) } else { Err(ParamError { name, value, requirement: "finite" }) }
}
