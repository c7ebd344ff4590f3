//! line in the cross-crate tests (adapter being written).

use switchboard_simulator::SimulatorHandle;

/// The `[channels.line]` table for the host configuration; empty until the
/// adapter exists.
pub fn config_section(_simulator: &SimulatorHandle) -> String {
    String::new()
}
