//! The BMS around the SmartPro (datasheet SmartPro-209, first paragraph):
//! LiPro cell modules ([`lipro`], their balancing [`balancing`]) and the
//! PowerPro ([`powerpro`]: main switch, secondary protection, and its fuse
//! [`fuse`]). Equations and parameters: `docs/companions.md`.

pub mod balancing;
pub mod fuse;
pub mod lipro;
pub mod powerpro;

pub use balancing::{Balancer, BalancingParams};
pub use fuse::{Fuse, FuseParams, FuseState};
pub use lipro::{Lipro, LiproParams};
pub use powerpro::{PowerPro, PowerProParams, Trip};
