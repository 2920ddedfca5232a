//! The simulated kernel (being written).
