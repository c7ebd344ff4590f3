//! What a send's outcome means: from what the adapter said and what the
//! host saw of its requests, to how the send settles and how the channel's
//! rate should react. Pure, so every rule is tested on its own.
//!
//! Uncertainty only where it is real:
//! - a message whose request never left (refused, never connected, the
//!   call failed before it) is retried, whatever the adapter said;
//! - a message whose request left and then lost its connection before a
//!   reply is uncertain — unless the platform deduplicates the key, in
//!   which case it is resent under the same key;
//! - an outcome the adapter reported before its call failed is kept.

use std::time::Duration;

use switchboard_contract::model::{Failure, RateLimitScope, SendError, SendResult};
use switchboard_core::consent;
use switchboard_runtime::{CallError, MessageTrace, RequestFate};
use switchboard_store::{ClaimedSend, Outcome, Settlement};

use crate::settings::DispatchConfig;

/// What the channel's rate controller should do after a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// Nothing in particular.
    None,
    /// The platform said the sender is too fast: slow down, and stop for
    /// this long (the retry-after, capped) if it said.
    Slow(Option<Duration>),
    /// A quota ran out: stop sending on the channel for this long.
    Quota(Duration),
}

/// How one message settles, and what it tells the rate controller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The settlement to record.
    pub settlement: Settlement,
    /// The rate signal.
    pub signal: Signal,
}

/// How long a quota answer without a retry time stops the channel.
const QUOTA_WAIT: Duration = Duration::from_secs(3600);
/// The least wait for a recipient-scope rate limit (WhatsApp's pair rate).
const RECIPIENT_WAIT: Duration = Duration::from_secs(6);

/// What the engine knows about one message after its call.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    /// The outcome the adapter returned or reported, if any.
    pub result: Option<&'a SendResult>,
    /// What became of the requests made for it.
    pub trace: MessageTrace,
    /// Why the call failed, if it did.
    pub call_error: Option<&'a CallError>,
    /// The first message of the batch left without an outcome by a failed
    /// call: the one most likely to have made it fail.
    pub culprit: bool,
}

/// Decide how `send` settles.
pub fn judge(send: &ClaimedSend, seen: Seen<'_>, config: &DispatchConfig, now_ms: i64) -> Verdict {
    let key = send.message.idempotency_key.clone();
    let settle = |outcome: Outcome| Settlement {
        key: key.clone(),
        outcome,
        consent: None,
        rate_limited: false,
        fall_back: false,
    };
    let attempt = send.message.attempt;
    let retry_or_give_up = |class: &str, message: String| {
        if attempt >= config.max_attempts {
            settle(Outcome::Failed {
                class: class.to_owned(),
                message: format!("gave up after {attempt} attempts: {message}"),
            })
        } else {
            settle(Outcome::Retrying {
                due_ms: now_ms + millis(config.backoff(attempt)),
                class: class.to_owned(),
                message,
            })
        }
    };
    let lost_after_write = seen.trace.last == Some(RequestFate::LostAfterWrite);
    // Written, then no reply: resend under the same key where the platform
    // deduplicates; otherwise it may have arrived and is not resent.
    let interrupted = |why: String| {
        if send.deduplicates {
            retry_or_give_up("interrupted", why)
        } else {
            settle(Outcome::Uncertain {
                message: format!(
                    "{why}; the request had been written, so the platform may have it, and it does not deduplicate: not resent"
                ),
            })
        }
    };

    let Some(result) = seen.result else {
        let error = seen.call_error.map_or_else(
            || "the adapter returned no outcome".to_owned(),
            ToString::to_string,
        );
        let settlement = if seen.trace.written {
            interrupted(format!("the adapter failed after sending: {error}"))
        } else if seen.culprit {
            retry_or_give_up("adapter_error", error)
        } else {
            // Never attempted: this attempt does not count.
            settle(Outcome::Released {
                due_ms: now_ms + millis(config.backoff(1)),
            })
        };
        return Verdict {
            settlement,
            signal: Signal::None,
        };
    };

    let error = match result {
        Ok(receipt) => {
            return Verdict {
                settlement: settle(Outcome::Sent {
                    platform_message_id: receipt.platform_message_id.clone(),
                    duplicate: receipt.duplicate,
                }),
                signal: Signal::None,
            };
        }
        Err(error) => error,
    };
    let failed = |class: &str, failure: &Failure| {
        settle(Outcome::Failed {
            class: class.to_owned(),
            message: failure.to_string(),
        })
    };
    let mut signal = Signal::None;
    let mut settlement = match error {
        SendError::Transient(failure) | SendError::Uncertain(failure) if lost_after_write => {
            interrupted(failure.to_string())
        }
        SendError::Uncertain(failure) if !seen.trace.written => {
            // The adapter could not tell, but nothing left the host.
            retry_or_give_up("transient", failure.to_string())
        }
        SendError::Uncertain(failure) if send.deduplicates => {
            retry_or_give_up("uncertain", failure.to_string())
        }
        SendError::Uncertain(failure) => settle(Outcome::Uncertain {
            message: failure.to_string(),
        }),
        SendError::Transient(failure) => retry_or_give_up("transient", failure.to_string()),
        SendError::RateLimited(limited) => {
            let asked = limited
                .retry_after_ms
                .map(|ms| Duration::from_millis(u64::from(ms)));
            let cap = Duration::from_millis(config.max_retry_after_ms);
            let message = limited.failure.to_string();
            if send.rate_limited + 1 > config.max_rate_limited {
                failed("rate_limited", &limited.failure)
            } else {
                match limited.scope {
                    RateLimitScope::Sender => {
                        let wait = asked.unwrap_or_else(|| config.backoff(send.rate_limited + 1));
                        signal = Signal::Slow(asked.map(|asked| asked.min(cap)));
                        if wait > cap {
                            settle(Outcome::Deferred {
                                due_ms: now_ms + millis(wait),
                                reason: "rate_limited".into(),
                                message,
                            })
                        } else {
                            settle(Outcome::Retrying {
                                due_ms: now_ms + millis(wait),
                                class: "rate_limited".into(),
                                message,
                            })
                        }
                    }
                    RateLimitScope::Recipient => settle(Outcome::Deferred {
                        due_ms: now_ms
                            + millis(asked.unwrap_or(RECIPIENT_WAIT).max(RECIPIENT_WAIT)),
                        reason: "pair_rate".into(),
                        message,
                    }),
                    RateLimitScope::Quota => {
                        let wait = asked.unwrap_or(QUOTA_WAIT);
                        signal = Signal::Quota(wait);
                        settle(Outcome::Deferred {
                            due_ms: now_ms + millis(wait),
                            reason: "quota".into(),
                            message,
                        })
                    }
                }
            }
        }
        SendError::Deferred(deferral) => settle(Outcome::Deferred {
            due_ms: i64::try_from(deferral.until_ms).unwrap_or(i64::MAX),
            reason: "platform_deferred".into(),
            message: deferral.failure.to_string(),
        }),
        SendError::Permanent(f) => failed("permanent", f),
        SendError::InvalidContent(f) => failed("invalid_content", f),
        SendError::AuthFailed(f) => failed("auth_failed", f),
        SendError::WindowClosed(f) => failed("window_closed", f),
        SendError::OptedOut(f) => failed("opted_out", f),
        SendError::RecipientUnreachable(f) => failed("unreachable", f),
    };
    settlement.rate_limited = matches!(error, SendError::RateLimited(_));
    settlement.fall_back = matches!(error, SendError::RecipientUnreachable(_));
    settlement.consent = consent::from_send_error(&send.channel, &send.message, error);
    Verdict { settlement, signal }
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_contract::model::{Purpose, RateLimited, Receipt};

    fn claimed(deduplicates: bool, attempt: u32) -> ClaimedSend {
        let mut send = crate::test_support::claimed_send("k");
        send.deduplicates = deduplicates;
        send.message.attempt = attempt;
        send
    }

    fn config() -> DispatchConfig {
        DispatchConfig {
            retry_base_ms: 100,
            retry_max_ms: 100,
            max_attempts: 3,
            max_retry_after_ms: 10_000,
            ..DispatchConfig::default()
        }
    }

    fn answered() -> MessageTrace {
        MessageTrace::new(true, Some(RequestFate::Answered))
    }

    fn lost() -> MessageTrace {
        MessageTrace::new(true, Some(RequestFate::LostAfterWrite))
    }

    fn never() -> MessageTrace {
        MessageTrace::new(false, Some(RequestFate::NotSent))
    }

    fn seen<'a>(result: Option<&'a SendResult>, trace: MessageTrace) -> Seen<'a> {
        Seen {
            result,
            trace,
            call_error: None,
            culprit: false,
        }
    }

    fn outcome(send: &ClaimedSend, seen: Seen<'_>) -> Outcome {
        judge(send, seen, &config(), 1_000).settlement.outcome
    }

    #[test]
    fn a_reset_after_the_request_left_is_uncertain_unless_the_platform_deduplicates() {
        let reset: SendResult = Err(SendError::Transient(Failure::new("", "connection reset")));
        assert!(matches!(
            outcome(&claimed(false, 1), seen(Some(&reset), lost())),
            Outcome::Uncertain { message } if message.contains("connection reset")
        ));
        assert!(matches!(
            outcome(&claimed(true, 1), seen(Some(&reset), lost())),
            Outcome::Retrying { class, .. } if class == "interrupted"
        ));
        // A refused connection never carried the request: retried.
        assert!(matches!(
            outcome(&claimed(false, 1), seen(Some(&reset), never())),
            Outcome::Retrying { class, .. } if class == "transient"
        ));
    }

    #[test]
    fn uncertain_needs_a_written_request() {
        let unsure: SendResult = Err(SendError::Uncertain(Failure::new("", "timed out")));
        assert!(matches!(
            outcome(&claimed(false, 1), seen(Some(&unsure), never())),
            Outcome::Retrying { .. }
        ));
        assert!(matches!(
            outcome(&claimed(false, 1), seen(Some(&unsure), answered())),
            Outcome::Uncertain { .. }
        ));
    }

    #[test]
    fn a_failed_call_keeps_reported_outcomes_and_releases_what_never_left() {
        let trap = CallError::Trap {
            channel: "whatsapp".into(),
            function: "send",
            message: "boom".into(),
        };
        let sent: SendResult = Ok(Receipt {
            platform_message_id: Some("wamid.1".into()),
            duplicate: false,
        });
        let with = |result, trace, culprit| Seen {
            result,
            trace,
            call_error: Some(&trap),
            culprit,
        };
        assert!(matches!(
            outcome(&claimed(false, 1), with(Some(&sent), answered(), false)),
            Outcome::Sent { platform_message_id: Some(id), .. } if id == "wamid.1"
        ));
        assert!(matches!(
            outcome(
                &claimed(false, 1),
                with(None, MessageTrace::default(), false)
            ),
            Outcome::Released { .. }
        ));
        assert!(matches!(
            outcome(&claimed(false, 1), with(None, MessageTrace::default(), true)),
            Outcome::Retrying { class, .. } if class == "adapter_error"
        ));
        assert!(matches!(
            outcome(&claimed(false, 3), with(None, MessageTrace::default(), true)),
            Outcome::Failed { class, .. } if class == "adapter_error"
        ));
        assert!(matches!(
            outcome(&claimed(false, 1), with(None, lost(), false)),
            Outcome::Uncertain { .. }
        ));
    }

    #[test]
    fn transient_failures_retry_then_become_dead_letters() {
        let busy: SendResult = Err(SendError::Transient(Failure::new("503", "busy")));
        assert!(matches!(
            outcome(&claimed(false, 2), seen(Some(&busy), answered())),
            Outcome::Retrying { due_ms, .. } if (1_050..=1_100).contains(&due_ms)
        ));
        assert!(matches!(
            outcome(&claimed(false, 3), seen(Some(&busy), answered())),
            Outcome::Failed { class, message } if class == "transient" && message.starts_with("gave up after 3 attempts")
        ));
    }

    #[test]
    fn rate_limits_slow_the_channel_and_long_waits_defer() {
        let limited = |scope, ms: Option<u32>| -> SendResult {
            Err(SendError::RateLimited(RateLimited {
                scope,
                retry_after_ms: ms,
                failure: Failure::new("130429", "too fast"),
            }))
        };
        let sender = limited(RateLimitScope::Sender, Some(2_000));
        let verdict = judge(
            &claimed(false, 1),
            seen(Some(&sender), answered()),
            &config(),
            0,
        );
        assert_eq!(verdict.signal, Signal::Slow(Some(Duration::from_secs(2))));
        assert!(verdict.settlement.rate_limited);
        assert!(matches!(
            verdict.settlement.outcome,
            Outcome::Retrying { due_ms: 2_000, .. }
        ));

        let long = limited(RateLimitScope::Sender, Some(600_000));
        let verdict = judge(
            &claimed(false, 1),
            seen(Some(&long), answered()),
            &config(),
            0,
        );
        assert_eq!(
            verdict.signal,
            Signal::Slow(Some(Duration::from_secs(10))),
            "capped"
        );
        assert!(matches!(
            verdict.settlement.outcome,
            Outcome::Deferred { due_ms: 600_000, ref reason, .. } if reason == "rate_limited"
        ));

        let quota = limited(RateLimitScope::Quota, None);
        let verdict = judge(
            &claimed(false, 1),
            seen(Some(&quota), answered()),
            &config(),
            0,
        );
        assert_eq!(verdict.signal, Signal::Quota(QUOTA_WAIT));

        let pair = limited(RateLimitScope::Recipient, Some(1_000));
        assert!(matches!(
            outcome(&claimed(false, 1), seen(Some(&pair), answered())),
            Outcome::Deferred { due_ms: 7_000, reason, .. } if reason == "pair_rate"
        ));

        let mut worn = claimed(false, 1);
        worn.rate_limited = config().max_rate_limited;
        assert!(matches!(
            outcome(&worn, seen(Some(&sender), answered())),
            Outcome::Failed { class, .. } if class == "rate_limited"
        ));
    }

    #[test]
    fn opt_outs_go_to_the_ledger_and_unreachable_falls_back() {
        let out: SendResult = Err(SendError::OptedOut(Failure::new("131050", "stopped")));
        let verdict = judge(
            &claimed(false, 1),
            seen(Some(&out), answered()),
            &config(),
            0,
        );
        let change = verdict.settlement.consent.expect("ledger change");
        assert!(!change.opted_in);
        assert_eq!(change.purpose, Some(Purpose::Marketing));
        let gone: SendResult = Err(SendError::RecipientUnreachable(Failure::new("3019", "no")));
        let verdict = judge(
            &claimed(false, 1),
            seen(Some(&gone), answered()),
            &config(),
            0,
        );
        assert!(verdict.settlement.fall_back);
        assert!(
            matches!(verdict.settlement.outcome, Outcome::Failed { ref class, .. } if class == "unreachable")
        );
    }
}
