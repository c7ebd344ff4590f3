//! Switchboard channel adapter for rcs (being written).
