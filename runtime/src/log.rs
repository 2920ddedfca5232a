//! A logging shim: `defmt` frames with the `defmt` feature, nothing without.
//!
//! The runtime logs rare events only (start-up, INIT, refusals), never per
//! request: the hot path pays nothing in either build.

/// Logs at info level.
#[macro_export]
#[doc(hidden)]
macro_rules! log_info {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::info!($($arg)*);
    }};
}

/// Logs at warn level.
#[macro_export]
#[doc(hidden)]
macro_rules! log_warn {
    ($($arg:tt)*) => {{
        #[cfg(feature = "defmt")]
        ::defmt::warn!($($arg)*);
    }};
}
