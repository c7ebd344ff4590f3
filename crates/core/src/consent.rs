//! Consent: who may be sent what, and why.
//!
//! Two sources are combined per channel, address and purpose:
//!
//! - the audience column (`consent_<channel>_<purpose>`), the CDP's baseline;
//! - the host's ledger of consent events the platforms reported (opt-in and
//!   opt-out webhooks: a LINE unfollow, a WhatsApp "stop promotions" tap).
//!
//! The newest ledger entry that applies to the purpose wins over the audience
//! column, because it is what the customer most recently told the platform.
//! Without one, the audience column decides and only an explicit "yes" is
//! consent. [`resolve`] is a pure function; the ledger itself lives in the
//! store.
//!
//! What appends to the ledger is decided here too: a platform's opt-in or
//! opt-out event ([`from_platform_event`]) and a send the platform refused
//! because the recipient opted out ([`from_send_error`]).

use switchboard_contract::model::{EventKind, OutboundMessage, Purpose, SendError};

/// What the operator lets platform consent events mean on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentPolicy {
    /// The purposes an opt-in that names none (a LINE follow, a WeChat
    /// subscribe) opts into. Default: utility only — following an account
    /// is not consent to marketing.
    pub opt_in_purposes: Vec<Purpose>,
    /// Whether a platform opt-in may override an explicit "no" from the
    /// audience file. Default: no.
    pub platform_overrides_cdp_no: bool,
}

impl Default for ConsentPolicy {
    fn default() -> Self {
        Self {
            opt_in_purposes: vec![Purpose::Utility],
            platform_overrides_cdp_no: false,
        }
    }
}

/// One consent event from the ledger, for one channel and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerEntry {
    /// `true` for an opt-in, `false` for an opt-out.
    pub opted_in: bool,
    /// The purpose the event applies to; `None` means every purpose.
    pub purpose: Option<Purpose>,
    /// When it happened, milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// Where the event came from, shown to operators (e.g. `whatsapp webhook wamid.X`).
    pub source: String,
}

/// Why a recipient may not be sent a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenialReason {
    /// The recipient opted out on the platform, and has not opted back in since.
    OptedOut {
        /// When the opt-out happened, milliseconds since the Unix epoch.
        at_ms: i64,
        /// Where the opt-out came from.
        source: String,
    },
    /// Nobody recorded consent for this purpose: the audience column is
    /// "no" or empty and the ledger has no opt-in.
    NoConsent,
}

/// Whether a recipient may be sent a message of one purpose on one channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsentDecision {
    /// Sending is allowed.
    Granted {
        /// What grants it: the ledger entry's source, [`SOURCE_AUDIENCE`] or
        /// [`SOURCE_SERVICE`].
        source: String,
    },
    /// Sending is not allowed.
    Denied(DenialReason),
}

impl ConsentDecision {
    /// Whether sending is allowed.
    pub fn is_granted(&self) -> bool {
        matches!(self, ConsentDecision::Granted { .. })
    }
}

/// The [`ConsentDecision::Granted`] source when the audience column granted consent.
pub const SOURCE_AUDIENCE: &str = "audience";

/// The [`ConsentDecision::Granted`] source for a service message (a reply in a
/// conversation the customer started), which needs no opt-in.
pub const SOURCE_SERVICE: &str = "service reply: no opt-in needed";

/// Decide consent for one purpose from the audience column and the ledger.
///
/// - `audience` is the audience column's value (`None`: empty or absent).
/// - `ledger` holds the entries for this channel and address, in any order.
///
/// Rules, in order:
///
/// 1. The newest ledger entry whose purpose is `purpose` or `None` (all
///    purposes) decides: an opt-out denies ([`DenialReason::OptedOut`]), an
///    opt-in grants — unless the audience column says "no" and
///    `platform_overrides_cdp_no` is false, when it is
///    [`DenialReason::NoConsent`]. When an opt-in and an opt-out carry the
///    same time, the opt-out wins.
/// 2. Without such an entry, a [`Purpose::Service`] message is granted (a
///    reply needs no opt-in) unless the audience column says "no".
/// 3. Otherwise the audience column decides: "yes" grants, "no" or unknown is
///    [`DenialReason::NoConsent`].
pub fn resolve(
    audience: Option<bool>,
    ledger: &[LedgerEntry],
    purpose: Purpose,
    platform_overrides_cdp_no: bool,
) -> ConsentDecision {
    let newest = ledger
        .iter()
        .filter(|entry| entry.purpose.is_none_or(|p| p == purpose))
        // On equal times an opt-out (`opted_in == false`) sorts last, so it wins.
        .max_by_key(|entry| (entry.at_ms, !entry.opted_in));
    if let Some(entry) = newest {
        if entry.opted_in && audience == Some(false) && !platform_overrides_cdp_no {
            return ConsentDecision::Denied(DenialReason::NoConsent);
        }
        return if entry.opted_in {
            ConsentDecision::Granted {
                source: entry.source.clone(),
            }
        } else {
            ConsentDecision::Denied(DenialReason::OptedOut {
                at_ms: entry.at_ms,
                source: entry.source.clone(),
            })
        };
    }
    match (purpose, audience) {
        (_, Some(false))
        | (Purpose::Marketing | Purpose::Utility | Purpose::Authentication, None) => {
            ConsentDecision::Denied(DenialReason::NoConsent)
        }
        (Purpose::Service, None) => ConsentDecision::Granted {
            source: SOURCE_SERVICE.to_string(),
        },
        (_, Some(true)) => ConsentDecision::Granted {
            source: SOURCE_AUDIENCE.to_string(),
        },
    }
}

/// A consent change to append to the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerChange {
    /// The customer's address on the channel.
    pub address: String,
    /// The purpose; `None` for every purpose.
    pub purpose: Option<Purpose>,
    /// Opted in (true) or out (false).
    pub opted_in: bool,
    /// Where it came from, shown to operators (`webhook:line`, `send-error:whatsapp`).
    pub source: String,
}

/// The ledger changes a platform's consent event makes. An opt-out without
/// a purpose covers every purpose; an opt-in without one covers only the
/// purposes the operator's `policy` names.
pub fn from_platform_event(
    channel: &str,
    policy: &ConsentPolicy,
    kind: &EventKind,
) -> Vec<LedgerChange> {
    let (change, opted_in) = match kind {
        EventKind::OptIn(change) => (change, true),
        EventKind::OptOut(change) => (change, false),
        _ => return Vec::new(),
    };
    let purposes: Vec<Option<Purpose>> = match (change.purpose, opted_in) {
        (Some(purpose), _) => vec![Some(purpose)],
        (None, false) => vec![None],
        (None, true) => policy.opt_in_purposes.iter().copied().map(Some).collect(),
    };
    purposes
        .into_iter()
        .map(|purpose| LedgerChange {
            address: change.address.clone(),
            purpose,
            opted_in,
            source: format!("webhook:{channel}"),
        })
        .collect()
}

/// The ledger change a refused send makes: a platform that answers
/// "opted out" has told us the recipient no longer wants this purpose.
pub fn from_send_error(
    channel: &str,
    message: &OutboundMessage,
    error: &SendError,
) -> Option<LedgerChange> {
    matches!(error, SendError::OptedOut(_)).then(|| LedgerChange {
        address: message.to.clone(),
        purpose: Some(message.purpose),
        opted_in: false,
        source: format!("send-error:{channel}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_contract::model::{ConsentChange, Content, Failure};

    #[test]
    fn platform_events_and_opted_out_sends_append_to_the_ledger() {
        let stop = EventKind::OptOut(ConsentChange {
            address: "+491".into(),
            purpose: Some(Purpose::Marketing),
        });
        assert_eq!(
            from_platform_event("whatsapp", &ConsentPolicy::default(), &stop),
            vec![LedgerChange {
                address: "+491".into(),
                purpose: Some(Purpose::Marketing),
                opted_in: false,
                source: "webhook:whatsapp".into(),
            }]
        );
        let message = OutboundMessage {
            idempotency_key: "k".into(),
            to: "+491".into(),
            purpose: Purpose::Utility,
            content: Content::Text("hi".into()),
            ttl_seconds: None,
            attempt: 1,
        };
        let refused = SendError::OptedOut(Failure::new("131050", "stopped"));
        assert_eq!(
            from_send_error("whatsapp", &message, &refused).map(|change| (
                change.purpose,
                change.opted_in,
                change.source
            )),
            Some((Some(Purpose::Utility), false, "send-error:whatsapp".into()))
        );
        let other = SendError::Transient(Failure::new("500", "busy"));
        assert_eq!(from_send_error("whatsapp", &message, &other), None);
    }

    fn entry(opted_in: bool, purpose: Option<Purpose>, at_ms: i64, source: &str) -> LedgerEntry {
        LedgerEntry {
            opted_in,
            purpose,
            at_ms,
            source: source.to_string(),
        }
    }

    fn granted(source: &str) -> ConsentDecision {
        ConsentDecision::Granted {
            source: source.to_string(),
        }
    }

    fn opted_out(at_ms: i64, source: &str) -> ConsentDecision {
        ConsentDecision::Denied(DenialReason::OptedOut {
            at_ms,
            source: source.to_string(),
        })
    }

    const NO_CONSENT: ConsentDecision = ConsentDecision::Denied(DenialReason::NoConsent);

    #[test]
    fn a_follow_opts_into_only_what_the_operator_chose() {
        let follow = EventKind::OptIn(ConsentChange {
            address: "U1".into(),
            purpose: None,
        });
        let purposes = |policy: &ConsentPolicy| -> Vec<Option<Purpose>> {
            from_platform_event("line", policy, &follow)
                .into_iter()
                .map(|change| change.purpose)
                .collect()
        };
        assert_eq!(
            purposes(&ConsentPolicy::default()),
            [Some(Purpose::Utility)]
        );
        let generous = ConsentPolicy {
            opt_in_purposes: vec![Purpose::Utility, Purpose::Marketing],
            platform_overrides_cdp_no: false,
        };
        assert_eq!(
            purposes(&generous),
            [Some(Purpose::Utility), Some(Purpose::Marketing)]
        );
        // An unfollow without a purpose still covers every purpose.
        let unfollow = EventKind::OptOut(ConsentChange {
            address: "U1".into(),
            purpose: None,
        });
        let changes = from_platform_event("line", &ConsentPolicy::default(), &unfollow);
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].purpose, None);
    }

    #[test]
    fn audience_column_decides_without_ledger() {
        assert_eq!(
            resolve(Some(true), &[], Purpose::Marketing, false),
            granted(SOURCE_AUDIENCE)
        );
        assert_eq!(
            resolve(Some(false), &[], Purpose::Marketing, false),
            NO_CONSENT
        );
        assert_eq!(resolve(None, &[], Purpose::Marketing, false), NO_CONSENT);
        assert_eq!(resolve(None, &[], Purpose::Utility, false), NO_CONSENT);
        assert!(resolve(Some(true), &[], Purpose::Utility, false).is_granted());
        assert!(!resolve(None, &[], Purpose::Authentication, false).is_granted());
    }

    #[test]
    fn ledger_opt_out_beats_audience_yes() {
        let ledger = [entry(
            false,
            Some(Purpose::Marketing),
            10,
            "whatsapp webhook",
        )];
        assert_eq!(
            resolve(Some(true), &ledger, Purpose::Marketing, false),
            opted_out(10, "whatsapp webhook")
        );
    }

    #[test]
    fn a_platform_opt_in_beats_an_explicit_audience_no_only_when_the_operator_allows() {
        let ledger = [entry(true, None, 10, "line follow")];
        assert_eq!(
            resolve(Some(false), &ledger, Purpose::Marketing, false),
            NO_CONSENT
        );
        assert_eq!(
            resolve(Some(false), &ledger, Purpose::Marketing, true),
            granted("line follow")
        );
        assert_eq!(
            resolve(None, &ledger, Purpose::Utility, false),
            granted("line follow")
        );
    }

    #[test]
    fn newest_applicable_entry_wins_in_any_order() {
        let ledger = [
            entry(true, None, 30, "resubscribed"),
            entry(false, None, 10, "blocked"),
            entry(false, Some(Purpose::Marketing), 20, "stop promotions"),
        ];
        assert_eq!(
            resolve(None, &ledger, Purpose::Marketing, false),
            granted("resubscribed")
        );

        let ledger = [
            entry(false, Some(Purpose::Marketing), 40, "stop promotions"),
            entry(true, None, 30, "resubscribed"),
        ];
        assert_eq!(
            resolve(Some(true), &ledger, Purpose::Marketing, false),
            opted_out(40, "stop promotions")
        );
        // A marketing opt-out does not touch utility messages.
        assert_eq!(
            resolve(None, &ledger, Purpose::Utility, false),
            granted("resubscribed")
        );
    }

    #[test]
    fn entries_for_other_purposes_are_ignored() {
        let ledger = [entry(true, Some(Purpose::Utility), 50, "utility opt-in")];
        assert_eq!(
            resolve(None, &ledger, Purpose::Marketing, false),
            NO_CONSENT
        );
        let ledger = [entry(false, Some(Purpose::Utility), 50, "utility opt-out")];
        assert_eq!(
            resolve(Some(true), &ledger, Purpose::Marketing, false),
            granted(SOURCE_AUDIENCE)
        );
    }

    #[test]
    fn opt_out_wins_a_tie() {
        let ledger = [entry(false, None, 7, "out"), entry(true, None, 7, "in")];
        assert_eq!(
            resolve(Some(true), &ledger, Purpose::Marketing, false),
            opted_out(7, "out")
        );
        let ledger = [entry(true, None, 7, "in"), entry(false, None, 7, "out")];
        assert_eq!(
            resolve(Some(true), &ledger, Purpose::Marketing, false),
            opted_out(7, "out")
        );
    }

    #[test]
    fn service_needs_no_opt_in_but_respects_opt_out_of_everything() {
        assert_eq!(
            resolve(None, &[], Purpose::Service, false),
            granted(SOURCE_SERVICE)
        );
        // An opt-out of marketing only does not stop replies.
        let ledger = [entry(false, Some(Purpose::Marketing), 5, "stop promotions")];
        assert_eq!(
            resolve(None, &ledger, Purpose::Service, false),
            granted(SOURCE_SERVICE)
        );
        // An opt-out of every purpose does.
        let ledger = [entry(false, None, 5, "blocked")];
        assert_eq!(
            resolve(None, &ledger, Purpose::Service, false),
            opted_out(5, "blocked")
        );
        // An explicit "no" in the audience column is respected too.
        assert_eq!(
            resolve(Some(false), &[], Purpose::Service, false),
            NO_CONSENT
        );
    }
}
