//! What one `send` call did, message by message, as the host saw it: the
//! outcomes the adapter reported, and the fate of every request it made on
//! a message's behalf.
//!
//! The host owns egress, so it knows whether a request was written to the
//! network. With the `switchboard-message-index` header (contract 1.1.0)
//! each request names the batch messages it carries; a 1.0.0 component's
//! requests (no header) are attributed to the whole batch. A caller turns
//! this into honest outcomes: a message whose request never left is safe to
//! retry, one whose request left and got no reply may have been delivered.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use switchboard_contract::ContractVersion;
use switchboard_contract::model::SendResult;

use crate::CallError;

/// The request header naming the batch messages a request carries.
pub const MESSAGE_INDEX_HEADER: &str = "switchboard-message-index";

/// What became of the last request made for a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestFate {
    /// Refused or failed before anything was written to the network.
    NotSent,
    /// Written, and a complete reply came back.
    Answered,
    /// Written, then the connection failed or timed out before a complete
    /// reply: the platform may have acted on it.
    LostAfterWrite,
}

/// The requests made for one message.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageTrace {
    /// Whether any request for it may have reached the platform: one was
    /// written, or one was still on its way when the call ended.
    pub written: bool,
    /// The fate of the last request made for it, if any was made (a
    /// request still on its way when the call ended counts as lost after
    /// it was written: the platform may have it).
    pub last: Option<RequestFate>,
    /// Requests written (answered or lost).
    completed_writes: u32,
    /// Requests begun whose fate is not known yet.
    in_flight: u32,
}

impl MessageTrace {
    /// A trace with these findings (for code that judges traces, and its tests).
    pub fn new(written: bool, last: Option<RequestFate>) -> Self {
        Self {
            written,
            last,
            completed_writes: u32::from(written),
            in_flight: 0,
        }
    }
}

/// Called before requests carrying some messages leave, so the caller can
/// record durably that they are about to be written.
pub trait WriteAhead: Send + Sync {
    /// `indices` are batch positions. Returns the positions that must not
    /// leave (another engine took their sends over): a request carrying
    /// any of them is refused. An error means nothing was recorded, and
    /// every request waiting on it is refused.
    fn before_write(&self, indices: Vec<u32>) -> BoxFuture<'static, Result<Vec<u32>, String>>;
}

/// Why a request carrying `lost` positions was held back.
pub fn no_longer_held(lost: usize) -> String {
    format!(
        "{lost} message(s) of this request are no longer held by this engine (its lease expired)"
    )
}

/// Everything a `send` call did.
#[derive(Debug, Clone)]
pub struct BatchOutcome {
    /// Per message: the outcome the adapter returned or reported, if any.
    pub results: Vec<Option<SendResult>>,
    /// Per message: what became of the requests made for it.
    pub requests: Vec<MessageTrace>,
    /// Why the call failed, if it did (outcomes reported before are kept).
    pub error: Option<CallError>,
}

/// The shared record of one call, filled by the egress hooks and the
/// `outcomes` import; it outlives the call's store, so a call cut short by
/// a timeout still leaves what it achieved.
#[derive(Debug)]
pub struct CallTrace {
    batch_len: usize,
    contract: ContractVersion,
    reported: Vec<Option<SendResult>>,
    requests: Vec<MessageTrace>,
}

/// A handle on a call's trace.
pub type SharedTrace = Arc<Mutex<CallTrace>>;

impl CallTrace {
    /// A trace for a batch of `batch_len` messages sent by a component of `contract`.
    pub fn new(batch_len: usize, contract: ContractVersion) -> Self {
        Self {
            batch_len,
            contract,
            reported: vec![None; batch_len],
            requests: vec![MessageTrace::default(); batch_len],
        }
    }

    /// The messages a request with this header value (or none) carries.
    /// Malformed or out-of-range values are attributed to the whole batch,
    /// the cautious reading; a 1.0.0 component's requests carry no header.
    pub fn attribute(&self, header: Option<&str>) -> Vec<u32> {
        let Some(value) = header.map(str::trim) else {
            return self.untagged();
        };
        if value.is_empty() {
            return Vec::new();
        }
        let parsed: Option<Vec<u32>> = value
            .split(',')
            .map(|part| part.trim().parse::<u32>().ok())
            .collect();
        match parsed {
            Some(indices) => self.listed(indices),
            None => self.whole_batch(),
        }
    }

    /// The messages an `http.send` request naming `messages` carries (1.2.0);
    /// naming none reads like a `wasi:http` request without the header.
    pub fn attribute_listed(&self, messages: &[u32]) -> Vec<u32> {
        if messages.is_empty() {
            self.untagged()
        } else {
            self.listed(messages.to_vec())
        }
    }

    /// A request that names no message.
    fn untagged(&self) -> Vec<u32> {
        match self.contract {
            ContractVersion::V1_0 => self.whole_batch(),
            // An adapter that tags nothing is trusted for untagged requests
            // only when its batch has one message.
            _ if self.batch_len == 1 => self.whole_batch(),
            _ => Vec::new(),
        }
    }

    /// Named positions, or the whole batch if one is out of range.
    fn listed(&self, indices: Vec<u32>) -> Vec<u32> {
        if indices.iter().all(|&i| (i as usize) < self.batch_len) {
            indices
        } else {
            self.whole_batch()
        }
    }

    fn whole_batch(&self) -> Vec<u32> {
        (0..self.batch_len as u32).collect()
    }

    /// A request carrying `indices` is about to be sent. Until its fate is
    /// recorded it counts as written: a call cut short while it is on its
    /// way must not have its messages sent again.
    pub fn begin(&mut self, indices: &[u32]) {
        for &index in indices {
            if let Some(trace) = self.requests.get_mut(index as usize) {
                trace.in_flight += 1;
                trace.written = true;
                trace.last = Some(RequestFate::LostAfterWrite);
            }
        }
    }

    /// Record what became of a request carrying `indices` (begun with
    /// [`CallTrace::begin`], or refused before it began).
    pub fn record(&mut self, indices: &[u32], begun: bool, fate: RequestFate) {
        for &index in indices {
            if let Some(trace) = self.requests.get_mut(index as usize) {
                if begun {
                    trace.in_flight = trace.in_flight.saturating_sub(1);
                }
                if fate != RequestFate::NotSent {
                    trace.completed_writes += 1;
                }
                trace.written = trace.completed_writes > 0 || trace.in_flight > 0;
                trace.last = Some(fate);
            }
        }
    }

    /// Record an outcome the adapter reported. Returns false for an index
    /// outside the batch.
    pub fn report(&mut self, index: u32, outcome: SendResult) -> bool {
        match self.reported.get_mut(index as usize) {
            Some(slot) => {
                *slot = Some(outcome);
                true
            }
            None => false,
        }
    }

    /// The outcomes so far and the request fates, with `returned` (what the
    /// call returned, if it returned) taking precedence over reports.
    pub fn finish(
        &self,
        returned: Option<Vec<SendResult>>,
        error: Option<CallError>,
    ) -> BatchOutcome {
        let mut results = self.reported.clone();
        if let Some(returned) = returned {
            for (slot, result) in results.iter_mut().zip(returned) {
                *slot = Some(result);
            }
        }
        BatchOutcome {
            results,
            requests: self.requests.clone(),
            error,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_contract::model::Receipt;

    #[test]
    fn requests_are_attributed_by_header_or_to_the_whole_batch() {
        let v11 = CallTrace::new(3, ContractVersion::V1_1);
        assert_eq!(v11.attribute(Some("0,2")), [0, 2]);
        assert_eq!(v11.attribute(Some(" 1 ")), [1]);
        assert!(
            v11.attribute(Some("")).is_empty(),
            "an explicit empty list: a token fetch"
        );
        assert!(v11.attribute(None).is_empty());
        assert_eq!(
            v11.attribute(Some("7")),
            [0, 1, 2],
            "out of range: cautious"
        );
        assert_eq!(v11.attribute(Some("x")), [0, 1, 2]);
        let v10 = CallTrace::new(2, ContractVersion::V1_0);
        assert_eq!(v10.attribute(None), [0, 1]);
        let single = CallTrace::new(1, ContractVersion::V1_1);
        assert_eq!(single.attribute(None), [0]);
    }

    #[test]
    fn http_send_requests_are_attributed_by_their_list() {
        let v12 = CallTrace::new(3, ContractVersion::V1_2);
        assert_eq!(v12.attribute_listed(&[0, 2]), [0, 2]);
        assert!(v12.attribute_listed(&[]).is_empty(), "names no message");
        assert_eq!(
            v12.attribute_listed(&[7]),
            [0, 1, 2],
            "out of range: cautious"
        );
        let single = CallTrace::new(1, ContractVersion::V1_2);
        assert_eq!(single.attribute_listed(&[]), [0]);
    }

    #[test]
    fn the_last_fate_and_whether_anything_left_are_kept() {
        let mut trace = CallTrace::new(3, ContractVersion::V1_1);
        trace.begin(&[0]);
        trace.record(&[0], true, RequestFate::NotSent);
        assert!(!trace.requests[0].written);
        assert_eq!(trace.requests[0].last, Some(RequestFate::NotSent));
        trace.begin(&[0, 1]);
        trace.record(&[0, 1], true, RequestFate::LostAfterWrite);
        trace.begin(&[1]);
        trace.record(&[1], true, RequestFate::Answered);
        assert!(trace.requests[0].written && trace.requests[1].written);
        assert_eq!(trace.requests[1].last, Some(RequestFate::Answered));
        // Refused before it began: never written.
        trace.record(&[2], false, RequestFate::NotSent);
        assert!(!trace.requests[2].written);
    }

    #[test]
    fn a_request_still_on_its_way_when_the_call_ends_counts_as_written() {
        let mut trace = CallTrace::new(1, ContractVersion::V1_1);
        trace.begin(&[0]);
        let outcome = trace.finish(None, None);
        assert!(outcome.requests[0].written);
        assert_eq!(outcome.requests[0].last, Some(RequestFate::LostAfterWrite));
    }

    #[test]
    fn returned_results_replace_reports_and_reports_survive_a_failed_call() {
        let mut trace = CallTrace::new(2, ContractVersion::V1_1);
        let receipt = |id: &str| {
            Ok(Receipt {
                platform_message_id: Some(id.into()),
                duplicate: false,
            })
        };
        assert!(trace.report(0, receipt("reported")));
        assert!(!trace.report(5, receipt("nowhere")));
        let failed = trace.finish(
            None,
            Some(CallError::Timeout {
                channel: "x".into(),
                function: "send",
                after: std::time::Duration::from_secs(1),
            }),
        );
        assert_eq!(failed.results[0], Some(receipt("reported")));
        assert_eq!(failed.results[1], None);
        let returned = trace.finish(Some(vec![receipt("a"), receipt("b")]), None);
        assert_eq!(returned.results[0], Some(receipt("a")));
    }
}
