//! Hosts stateright actors on tokio (work in progress).
