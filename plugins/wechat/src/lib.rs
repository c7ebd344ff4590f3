//! Switchboard channel adapter for wechat (being written).
