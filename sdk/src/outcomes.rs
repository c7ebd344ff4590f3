//! Per-message outcomes, reported while `send` runs, and requests tagged
//! with the messages they carry.
//!
//! A call that traps or runs out of time loses its return value; outcomes
//! reported here are kept, so the host settles those messages and retries
//! only the rest. And every request tagged with its messages' batch indices
//! (the `switchboard-message-index` header, which the host removes) tells
//! the host, per message, whether anything was written to the network: a
//! message whose request never left is retried, not reported uncertain.
//!
//! [`send_each`] does both for the common one-request-per-message adapter
//! (and [`send_each_concurrently`] does it with the batch's requests in
//! flight together):
//!
//! ```no_run
//! use switchboard_sdk::prelude::*;
//!
//! fn send(batch: Vec<OutboundMessage>) -> Vec<Result<Receipt, SendError>> {
//!     outcomes::send_each(batch, |message| {
//!         let response = Request::post("https://api.acme.example/v1/messages")
//!             .json(&serde_json::json!({"to": message.to}))
//!             .send()?; // tagged with this message's index
//!         Ok(Receipt::new(response.text()))
//!     })
//! }
//! ```

use std::cell::RefCell;

use crate::bindings::switchboard::channel::outcomes as host;
use crate::http::{self, Request, Response};
use crate::types::{OutboundMessage, Receipt, SendError};

/// The request header naming the batch indices a request is sent for.
pub const MESSAGE_INDEX_HEADER: &str = "switchboard-message-index";

thread_local! {
    /// The batch indices the adapter is working on, for untagged requests.
    static CURRENT: RefCell<Vec<u32>> = const { RefCell::new(Vec::new()) };
}

/// Report the outcome of the message at `index` as soon as it is known.
pub fn report(index: u32, outcome: &Result<Receipt, SendError>) {
    host::report(index, outcome.as_ref());
}

/// Run `work` with `indices` as the messages untagged requests are sent for.
pub fn working_on<R>(indices: &[u32], work: impl FnOnce() -> R) -> R {
    let previous = CURRENT.with(|current| current.replace(indices.to_vec()));
    let result = work();
    CURRENT.with(|current| *current.borrow_mut() = previous);
    result
}

/// The indices untagged requests are attributed to right now.
pub(crate) fn current() -> Vec<u32> {
    CURRENT.with(|current| current.borrow().clone())
}

/// The header value for `indices`: `3,4,7`.
pub fn header_value(indices: &[u32]) -> String {
    indices
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// Send each message with `send_one`, one after another: requests made
/// inside are tagged with the message's index, and each outcome is
/// reported as soon as it is known.
pub fn send_each(
    batch: Vec<OutboundMessage>,
    mut send_one: impl FnMut(&OutboundMessage) -> Result<Receipt, SendError>,
) -> Vec<Result<Receipt, SendError>> {
    batch
        .iter()
        .enumerate()
        .map(|(index, message)| {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let outcome = working_on(&[index], || send_one(message));
            report(index, &outcome);
            outcome
        })
        .collect()
}

/// Send each message of `batch` in a request of its own, all of them handed
/// to the host in one call ([`http::send_all`]), which sends them
/// concurrently, then report each outcome as its reply is read.
/// `request_for` builds a message's request (an error there is the
/// message's outcome, and nothing is sent);
/// `receipt_from` reads the platform's reply. Each request is tagged with
/// its message's index. Use it where a platform takes one message per
/// request and messages of a batch do not depend on one another: a batch of
/// 50 then costs about one round trip of waiting, not 50.
pub fn send_each_concurrently(
    batch: &[OutboundMessage],
    mut request_for: impl FnMut(&OutboundMessage) -> Result<Request, SendError>,
    mut receipt_from: impl FnMut(&OutboundMessage, Response) -> Result<Receipt, SendError>,
) -> Vec<Result<Receipt, SendError>> {
    let mut outcomes: Vec<Option<Result<Receipt, SendError>>> = Vec::new();
    outcomes.resize_with(batch.len(), || None);
    let mut requests = Vec::with_capacity(batch.len());
    let mut sent_for = Vec::with_capacity(batch.len());
    for (index, message) in batch.iter().enumerate() {
        let tag = u32::try_from(index).unwrap_or(u32::MAX);
        match request_for(message) {
            Ok(request) => {
                requests.push(request.for_messages(&[tag]));
                sent_for.push(index);
            }
            Err(error) => {
                let outcome = Err(error);
                report(tag, &outcome);
                outcomes[index] = Some(outcome);
            }
        }
    }
    http::send_all_then(requests, |position, reply| {
        let index = sent_for[position];
        let outcome = reply
            .map_err(SendError::from)
            .and_then(|response| receipt_from(&batch[index], response));
        report(u32::try_from(index).unwrap_or(u32::MAX), &outcome);
        outcomes[index] = Some(outcome);
    });
    outcomes
        .into_iter()
        .map(|outcome| {
            outcome.unwrap_or_else(|| {
                Err(SendError::Transient(crate::types::Failure::new(
                    "",
                    "the request was never started",
                )))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lists_indices() {
        assert_eq!(header_value(&[0]), "0");
        assert_eq!(header_value(&[3, 4, 7]), "3,4,7");
    }

    #[test]
    fn working_on_sets_and_restores_the_current_indices() {
        assert!(current().is_empty());
        working_on(&[2], || {
            assert_eq!(current(), [2]);
            working_on(&[5, 6], || assert_eq!(current(), [5, 6]));
            assert_eq!(current(), [2]);
        });
        assert!(current().is_empty());
    }
}
