//! fmi-export's macros test a `coverage_nightly` cfg, which expands in this crate.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(coverage_nightly)");
}
