//! Logging into the host's log, tagged with the adapter's name.

use crate::bindings::switchboard::channel::log::{Level, write};

/// Fine detail, for debugging an adapter.
pub fn debug(message: &str) {
    write(Level::Debug, message);
}

/// Normal operation.
pub fn info(message: &str) {
    write(Level::Info, message);
}

/// Something unexpected but handled.
pub fn warn(message: &str) {
    write(Level::Warn, message);
}

/// Something failed.
pub fn error(message: &str) {
    write(Level::Error, message);
}
