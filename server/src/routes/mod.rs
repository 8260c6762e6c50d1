//! HTTP routes, one module per resource, merged in [`crate::app`].

pub mod health;
pub mod sync;
