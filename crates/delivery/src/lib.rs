//! Switchboard's delivery engine: the outbox is the single source of truth,
//! and engines work it.
//!
//! - [`activation`]: a campaign over an audience, streamed through the
//!   policy gate into the outbox.
//! - [`engine`]: works the outbox continuously, one [`lane`] per channel.
//! - [`lane`]: a channel's own concurrency, [`rate`] controller, pacing and
//!   batches; nothing waits while holding a slot.
//! - [`judge`]: what an adapter's answer and the host's view of its
//!   requests mean for a send (retry, defer, fail, uncertain).
//! - [`run`]: a one-shot `send`: enqueue, then work the campaign until it settles.
//! - [`results`]: the per-recipient results file and the summary.
//! - [`settings`]: the operator's `[dispatch]` table and per-channel pacing.
//! - [`triggers`]: events from the brand's systems through the same gate
//!   into the same outbox (wait, cancel-on, deadline).
//! - `settled_feed`: every send an engine settles, for its watchers, none lost.
//! - `write_ahead`: the outbox mark each request makes before it leaves.

pub mod activation;
pub mod engine;
pub mod judge;
pub mod lane;
pub mod rate;
mod read_ahead;
pub mod results;
pub mod run;
pub mod settings;
mod settled_feed;
#[cfg(test)]
mod test_support;
pub mod triggers;
mod write_ahead;

pub use engine::{Engine, EngineOptions, Settled};
pub use results::{ResultLine, RunReport};
pub use run::{RunOptions, run_campaign};
pub use settings::{DeliverySettings, DispatchConfig, LaneConfig};
