//! Phone numbers: the host's E.164 form (`+821012345678`) and the national
//! form NHN Cloud wants in `recipientNo` (`01012345678`).
//!
//! KakaoTalk accounts are registered to Korean mobile numbers, so only
//! `+82 1x…` numbers (010, and the legacy 011/016/017/018/019 ranges) are
//! accepted. Anything else cannot be reached through this channel: the
//! adapter answers `recipient-unreachable`, so the host tries the next
//! channel of the route (RCS, WhatsApp, ...).

use switchboard_sdk::types::{Failure, SendError};

/// Korea's country calling code, with the `+`.
pub const KOREA_PREFIX: &str = "+82";

/// Why a number cannot be used on KakaoTalk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// The number is not a Korean one (`+82`).
    NotKorean(String),
    /// A Korean number that is not a mobile number (landline, service
    /// number): it cannot have a KakaoTalk account.
    NotMobile(String),
    /// Not a phone number at all (letters, wrong length).
    Malformed(String),
}

impl std::fmt::Display for AddressError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AddressError::NotKorean(number) => write!(
                f,
                "`{number}` is not a Korean number (+82): KakaoTalk Bizmessage through NHN Cloud reaches Korean mobile numbers only"
            ),
            AddressError::NotMobile(number) => write!(
                f,
                "`{number}` is not a Korean mobile number (+82 10…, 11, 16–19): KakaoTalk accounts are registered to mobile numbers"
            ),
            AddressError::Malformed(number) => {
                write!(f, "`{number}` is not an E.164 phone number")
            }
        }
    }
}

impl From<AddressError> for SendError {
    /// Every address problem is `recipient-unreachable`: the person may
    /// well be reachable on another channel of the route.
    fn from(error: AddressError) -> Self {
        SendError::RecipientUnreachable(Failure::new("", error.to_string()))
    }
}

/// The national form NHN wants (`01012345678`) of an E.164 Korean mobile
/// number (`+821012345678`). Spaces and hyphens are tolerated.
pub fn national(e164: &str) -> Result<String, AddressError> {
    let compact: String = e164
        .trim()
        .chars()
        .filter(|c| !matches!(c, ' ' | '-'))
        .collect();
    let Some(digits) = compact.strip_prefix('+') else {
        return Err(AddressError::Malformed(e164.to_owned()));
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(AddressError::Malformed(e164.to_owned()));
    }
    let Some(subscriber) = digits.strip_prefix("82") else {
        return Err(AddressError::NotKorean(e164.to_owned()));
    };
    // A trunk zero written after the country code (+82 010…) is a common
    // export mistake; the national form has exactly one.
    let subscriber = subscriber.strip_prefix('0').unwrap_or(subscriber);
    let national = format!("0{subscriber}");
    if is_mobile(&national) {
        Ok(national)
    } else if (9..=11).contains(&national.len()) {
        Err(AddressError::NotMobile(e164.to_owned()))
    } else {
        Err(AddressError::Malformed(e164.to_owned()))
    }
}

/// Whether a national number is a Korean mobile number: `010` and 11
/// digits, or a legacy `011`/`016`–`019` range with 10 or 11 digits.
pub fn is_mobile(national: &str) -> bool {
    if !national.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    match national.get(..3) {
        Some("010") => national.len() == 11,
        Some("011" | "016" | "017" | "018" | "019") => (10..=11).contains(&national.len()),
        _ => false,
    }
}

/// The E.164 form (`+821012345678`) of a national number NHN reports
/// (`01012345678`); numbers already in international form are kept.
pub fn e164(national: &str) -> String {
    let trimmed = national.trim();
    if trimmed.starts_with('+') {
        trimmed.to_owned()
    } else if let Some(rest) = trimmed.strip_prefix('0') {
        format!("{KOREA_PREFIX}{rest}")
    } else if trimmed.starts_with("82") {
        format!("+{trimmed}")
    } else {
        format!("{KOREA_PREFIX}{trimmed}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_korean_mobile_numbers_to_the_national_form() {
        assert_eq!(national("+821012345678").as_deref(), Ok("01012345678"));
        assert_eq!(national("+82 10-1234-5678").as_deref(), Ok("01012345678"));
        assert_eq!(national("+8201012345678").as_deref(), Ok("01012345678"));
        assert_eq!(national("+82111234567").as_deref(), Ok("0111234567"));
        assert_eq!(national("+821912345678").as_deref(), Ok("01912345678"));
    }

    #[test]
    fn refuses_foreign_numbers_naming_the_reason() {
        let error = national("+4915112345678").unwrap_err();
        assert_eq!(error, AddressError::NotKorean("+4915112345678".into()));
        assert!(
            error.to_string().contains("is not a Korean number (+82)"),
            "{error}"
        );
        // +1 8210… is a US number that merely contains 82.
        assert!(matches!(
            national("+18210123456"),
            Err(AddressError::NotKorean(_))
        ));
    }

    #[test]
    fn refuses_landlines_and_malformed_numbers() {
        // Seoul landline.
        let error = national("+8221234567").unwrap_err();
        assert!(matches!(error, AddressError::NotMobile(_)), "{error:?}");
        assert!(error.to_string().contains("not a Korean mobile number"));
        // 010 with a digit missing.
        assert!(matches!(
            national("+82101234567"),
            Err(AddressError::NotMobile(_))
        ));
        for bad in ["01012345678", "+82abc", "+", "", "+82"] {
            assert!(
                matches!(national(bad), Err(AddressError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn address_errors_are_recipient_unreachable() {
        let error: SendError = national("+14155550100").unwrap_err().into();
        match error {
            SendError::RecipientUnreachable(failure) => {
                assert_eq!(failure.code, "");
                assert!(
                    failure
                        .message
                        .starts_with("`+14155550100` is not a Korean number")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn mobile_ranges() {
        assert!(is_mobile("01012345678"));
        assert!(!is_mobile("0101234567"));
        assert!(is_mobile("0161234567"));
        assert!(!is_mobile("0212345678"));
        assert!(!is_mobile("010-1234-5678"));
    }

    #[test]
    fn national_numbers_back_to_e164() {
        assert_eq!(e164("01012345678"), "+821012345678");
        assert_eq!(e164("+821012345678"), "+821012345678");
        assert_eq!(e164("821012345678"), "+821012345678");
    }
}
