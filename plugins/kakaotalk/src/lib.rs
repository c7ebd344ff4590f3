//! Switchboard channel adapter for kakaotalk (being written).
