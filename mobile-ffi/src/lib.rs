//! uniffi bindings of yibiao-core (being built).
