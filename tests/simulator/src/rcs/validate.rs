//! Validation of RBM requests: the phone number in the path, the
//! `messageId`, and the `AgentMessage` body; plus the RFC 3339 timestamps
//! Google's JSON uses.

use serde_json::{Map, Value};

use super::error::GoogleError;

/// Longest `contentMessage.text`, in characters.
pub const MAX_TEXT_CHARS: usize = 3_072;

/// `messageTrafficType` values the simulator accepts.
pub const TRAFFIC_TYPES: &[&str] = &[
    "MESSAGE_TRAFFIC_TYPE_UNSPECIFIED",
    "AUTHENTICATION",
    "TRANSACTION",
    "PROMOTION",
    "SERVICEREQUEST",
    "ACKNOWLEDGEMENT",
];

/// Fields an `AgentMessage` may carry on create (`name` and `sendTime` are
/// output-only and ignored).
const AGENT_MESSAGE_FIELDS: &[&str] = &[
    "contentMessage",
    "messageTrafficType",
    "ttl",
    "expireTime",
    "name",
    "sendTime",
];

/// When an undelivered message expires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    /// Never (RBM keeps trying for 30 days; the simulator forever).
    None,
    /// `ttl`: this many milliseconds after acceptance.
    TtlMs(i64),
    /// `expireTime`: at this Unix time in milliseconds.
    AtMs(i64),
}

/// A structurally valid `AgentMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbound {
    /// `contentMessage.text`.
    pub text: String,
    /// `messageTrafficType`, if given.
    pub traffic_type: Option<String>,
    /// `ttl` or `expireTime`.
    pub expiry: Expiry,
}

/// Whether `phone` is E.164 as RBM wants it: `+` then 8 to 15 digits, not starting with 0.
pub fn is_e164(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// Whether `text` is a UUID in 8-4-4-4-12 hex form.
pub fn is_uuid(text: &str) -> bool {
    let groups: Vec<&str> = text.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(group, len)| group.len() == len && group.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Validates an `AgentMessage` body.
pub fn parse_agent_message(body: &[u8]) -> Result<Outbound, GoogleError> {
    let value: Value = serde_json::from_slice(body).map_err(|error| {
        GoogleError::invalid_argument(format!("Invalid JSON payload received. {error}"))
    })?;
    let Some(obj) = value.as_object() else {
        return Err(GoogleError::invalid_argument(
            "Invalid JSON payload received. Expected an AgentMessage object.",
        ));
    };
    if let Some(unknown) = obj
        .keys()
        .find(|key| !AGENT_MESSAGE_FIELDS.contains(&key.as_str()))
    {
        return Err(GoogleError::invalid_argument(format!(
            "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
        )));
    }
    let text = parse_content(obj)?;
    let traffic_type = match obj.get("messageTrafficType") {
        None | Some(Value::Null) => None,
        Some(Value::String(kind)) if TRAFFIC_TYPES.contains(&kind.as_str()) => Some(kind.clone()),
        Some(other) => {
            return Err(GoogleError::invalid_argument(format!(
                "Invalid value at 'agent_message.message_traffic_type' ({other}): expected one of {}",
                TRAFFIC_TYPES.join(", ")
            )));
        }
    };
    let expiry = match (obj.get("ttl"), obj.get("expireTime")) {
        (Some(_), Some(_)) => {
            return Err(GoogleError::invalid_argument(
                "agent_message.ttl and agent_message.expire_time are mutually exclusive",
            ));
        }
        (Some(ttl), None) => Expiry::TtlMs(
            ttl.as_str()
                .and_then(parse_duration_ms)
                .ok_or_else(|| {
                    GoogleError::invalid_argument(format!(
                        "Invalid value at 'agent_message.ttl' ({ttl}): expected a duration such as \"3600s\""
                    ))
                })?,
        ),
        (None, Some(at)) => Expiry::AtMs(
            at.as_str()
                .and_then(parse_rfc3339_ms)
                .ok_or_else(|| {
                    GoogleError::invalid_argument(format!(
                        "Invalid value at 'agent_message.expire_time' ({at}): expected an RFC 3339 timestamp"
                    ))
                })?,
        ),
        (None, None) => Expiry::None,
    };
    Ok(Outbound {
        text,
        traffic_type,
        expiry,
    })
}

fn parse_content(obj: &Map<String, Value>) -> Result<String, GoogleError> {
    let content = match obj.get("contentMessage") {
        Some(Value::Object(content)) => content,
        None | Some(Value::Null) => {
            return Err(GoogleError::invalid_argument(
                "agent_message.content_message is required",
            ));
        }
        Some(_) => {
            return Err(GoogleError::invalid_argument(
                "agent_message.content_message must be an object",
            ));
        }
    };
    match content.get("text") {
        Some(Value::String(text)) if text.trim().is_empty() => Err(GoogleError::invalid_argument(
            "agent_message.content_message.text must not be empty",
        )),
        Some(Value::String(text)) => {
            let length = text.chars().count();
            if length > MAX_TEXT_CHARS {
                Err(GoogleError::invalid_argument(format!(
                    "agent_message.content_message.text is {length} characters long; the limit is {MAX_TEXT_CHARS}"
                )))
            } else {
                Ok(text.clone())
            }
        }
        Some(_) => Err(GoogleError::invalid_argument(
            "agent_message.content_message.text must be a string",
        )),
        None => Err(GoogleError::invalid_argument(
            "agent_message.content_message.text is required (the simulator serves text messages only)",
        )),
    }
}

/// A protobuf `Duration` in JSON: seconds with up to 9 decimals and an `s`
/// (`"3600s"`, `"1.5s"`), in milliseconds. `None` for anything else.
pub fn parse_duration_ms(text: &str) -> Option<i64> {
    let number = text.strip_suffix('s')?;
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || fraction.len() > 9
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    seconds.checked_mul(1_000)?.checked_add(millis)
}

/// Unix milliseconds of an RFC 3339 timestamp (`2026-03-01T12:00:00.5Z`,
/// `2026-03-01T13:00:00+01:00`).
pub fn parse_rfc3339_ms(text: &str) -> Option<i64> {
    let (date, rest) = text.trim().split_once(['T', 't'])?;
    let mut date_parts = date.splitn(3, '-');
    let year = fixed_digits(date_parts.next()?, 4)?;
    let month = fixed_digits(date_parts.next()?, 2)?;
    let day = fixed_digits(date_parts.next()?, 2)?;
    let zone_at = rest.find(['Z', 'z', '+', '-'])?;
    let (time, zone) = rest.split_at(zone_at);
    let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
    let mut clock_parts = clock.splitn(3, ':');
    let hour = fixed_digits(clock_parts.next()?, 2)?;
    let minute = fixed_digits(clock_parts.next()?, 2)?;
    let second = fixed_digits(clock_parts.next()?, 2)?;
    if !(1..=12).contains(&month)
        || !(1..=31).contains(&day)
        || hour > 23
        || minute > 59
        || second > 60
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let millis: i64 = format!("{fraction:0<3}")[..3].parse().ok()?;
    let offset_minutes = match zone {
        "Z" | "z" => 0,
        _ => {
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (hours, minutes) = zone.get(1..)?.split_once(':')?;
            sign * (fixed_digits(hours, 2)? * 60 + fixed_digits(minutes, 2)?)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(
        (days * 86_400 + hour * 3_600 + minute * 60 + second - offset_minutes * 60) * 1_000
            + millis,
    )
}

/// `ms` (Unix milliseconds) as `YYYY-MM-DDTHH:MM:SS.mmmZ`.
pub fn format_rfc3339(ms: i64) -> String {
    let seconds = ms.div_euclid(1_000);
    let millis = ms.rem_euclid(1_000);
    let days = seconds.div_euclid(86_400);
    let second_of_day = seconds.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

fn fixed_digits(text: &str, len: usize) -> Option<i64> {
    if text.len() == len && text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Days since 1970-01-01 of a Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The Gregorian date of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z - era * 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status_of(body: &str) -> (&'static str, String) {
        match parse_agent_message(body.as_bytes()) {
            Err(error) => (error.canonical, error.message),
            Ok(ok) => panic!("accepted {ok:?}"),
        }
    }

    #[test]
    fn phones_and_uuids() {
        assert!(is_e164("+12223334444"));
        assert!(is_e164("+821012345678"));
        assert!(!is_e164("12223334444"));
        assert!(!is_e164("+1222"));
        assert!(!is_e164("+0123456789"));
        assert!(!is_e164("+1 222 333 4444"));
        assert!(is_uuid("3f1c5a0e-9b7d-4c2a-8e6f-0b1d3c5a7e9f"));
        assert!(!is_uuid("3f1c5a0e9b7d4c2a8e6f0b1d3c5a7e9f"));
        assert!(!is_uuid("not-a-uuid"));
    }

    #[test]
    fn accepts_text_with_ttl_or_expire_time() {
        let ok = parse_agent_message(
            br#"{"contentMessage":{"text":"hi"},"messageTrafficType":"PROMOTION","ttl":"3600s"}"#,
        )
        .expect("valid");
        assert_eq!(ok.text, "hi");
        assert_eq!(ok.traffic_type.as_deref(), Some("PROMOTION"));
        assert_eq!(ok.expiry, Expiry::TtlMs(3_600_000));
        let ok = parse_agent_message(
            br#"{"contentMessage":{"text":"hi"},"expireTime":"2026-03-01T12:00:00Z"}"#,
        )
        .expect("valid");
        assert_eq!(ok.expiry, Expiry::AtMs(1_772_366_400_000));
        assert_eq!(ok.traffic_type, None);
        let ok = parse_agent_message(br#"{"contentMessage":{"text":"hi"}}"#).expect("valid");
        assert_eq!(ok.expiry, Expiry::None);
    }

    #[test]
    fn rejects_bad_bodies_with_invalid_argument() {
        let cases = [
            ("nope", "Invalid JSON payload"),
            ("[]", "Expected an AgentMessage object"),
            (
                r#"{"contentMessage":{"text":"hi"},"colour":1}"#,
                "Unknown name \"colour\"",
            ),
            ("{}", "content_message is required"),
            (r#"{"contentMessage":"hi"}"#, "must be an object"),
            (r#"{"contentMessage":{"text":"  "}}"#, "must not be empty"),
            (r#"{"contentMessage":{"text":5}}"#, "must be a string"),
            (r#"{"contentMessage":{"richCard":{}}}"#, "text is required"),
            (
                r#"{"contentMessage":{"text":"hi"},"messageTrafficType":"SPAM"}"#,
                "message_traffic_type",
            ),
            (
                r#"{"contentMessage":{"text":"hi"},"ttl":"10s","expireTime":"2026-03-01T12:00:00Z"}"#,
                "mutually exclusive",
            ),
            (
                r#"{"contentMessage":{"text":"hi"},"ttl":"10"}"#,
                "agent_message.ttl",
            ),
            (
                r#"{"contentMessage":{"text":"hi"},"expireTime":"soon"}"#,
                "expire_time",
            ),
        ];
        for (body, expected) in cases {
            let (status, message) = status_of(body);
            assert_eq!(status, "INVALID_ARGUMENT", "{body}");
            assert!(message.contains(expected), "{body}: {message}");
        }
        let long = format!(
            r#"{{"contentMessage":{{"text":"{}"}}}}"#,
            "x".repeat(MAX_TEXT_CHARS + 1)
        );
        assert!(status_of(&long).1.contains("3073 characters long"));
        let limit = format!(
            r#"{{"contentMessage":{{"text":"{}"}}}}"#,
            "한".repeat(MAX_TEXT_CHARS)
        );
        assert!(parse_agent_message(limit.as_bytes()).is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("3600s"), Some(3_600_000));
        assert_eq!(parse_duration_ms("1.5s"), Some(1_500));
        assert_eq!(parse_duration_ms("0.000000001s"), Some(0));
        assert_eq!(parse_duration_ms("10"), None);
        assert_eq!(parse_duration_ms("-1s"), None);
        assert_eq!(parse_duration_ms("s"), None);
        assert_eq!(parse_duration_ms("1.0000000001s"), None);
    }

    #[test]
    fn timestamps_round_trip() {
        for ms in [0, 1_772_366_400_000, 1_709_164_800_123, 4_102_444_799_999] {
            assert_eq!(parse_rfc3339_ms(&format_rfc3339(ms)), Some(ms), "{ms}");
        }
        assert_eq!(
            format_rfc3339(1_772_366_400_500),
            "2026-03-01T12:00:00.500Z"
        );
        assert_eq!(
            parse_rfc3339_ms("2026-03-01T13:00:00+01:00"),
            Some(1_772_366_400_000)
        );
        assert_eq!(parse_rfc3339_ms("2026-03-01 12:00:00Z"), None);
        assert_eq!(parse_rfc3339_ms("2026-03-01T12:00:00"), None);
    }
}
