//! Switchboard channel adapter for line (being written).
