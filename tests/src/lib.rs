//! Helpers shared by the end-to-end tests and their child-process binaries.

pub mod crash;
pub mod proxy;
