//! Whether a parsed phone number is valid: the phone library's own rule
//! (`phonenumber::is_valid`), over the library's own metadata, but with the
//! metadata's patterns compiled once per region and kept here (see
//! [`crate::phone_patterns`]).
//!
//! The rule, as the library applies it (`validator::is_valid_with`):
//! find the region the number belongs to (the only region of its calling
//! code; or, for a shared code, the first whose leading digits match, or
//! failing that whose patterns accept the number), then the number is
//! valid when that region's general pattern and one of its type patterns
//! (premium rate, toll free, shared cost, VoIP, personal, pager, UAN,
//! voicemail, fixed line, mobile) accept it. A pattern accepts a number
//! when the number's length is one of the pattern's possible lengths (if
//! it lists any) and the pattern matches at its start.

use crate::phone_patterns::{Region, compiled, region_of};

/// Whether `number` is a valid number: the same answer as
/// `phonenumber::is_valid`; see the [module docs](self).
pub(crate) fn is_valid(number: &phonenumber::PhoneNumber) -> bool {
    let national = number.national().to_string();
    is_valid_parts(number.country().code(), &national)
        .unwrap_or_else(|| phonenumber::is_valid(number))
}

/// Whether the number with calling code `code` and national significant
/// number `national` (as the library prints it) is valid; `None` when a
/// pattern it needs does not compile here and only the library can say.
pub(crate) fn is_valid_parts(code: u16, national: &str) -> Option<bool> {
    match region_of(code, national) {
        Region::Found(meta) => compiled(meta).map(|patterns| patterns.has_type(national)),
        Region::None => Some(false),
        Region::AskTheLibrary => None,
    }
}

/// Every number type the metadata gives an example of, for tests that
/// compare with the phone library over all of them.
#[cfg(test)]
pub(crate) const EXAMPLE_TYPES: [phonenumber::Type; 11] = {
    use phonenumber::Type;
    [
        Type::FixedLine,
        Type::Mobile,
        Type::TollFree,
        Type::PremiumRate,
        Type::SharedCost,
        Type::PersonalNumber,
        Type::Voip,
        Type::Pager,
        Type::Uan,
        Type::Emergency,
        Type::Voicemail,
    ]
};

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::metadata::DATABASE;
    use std::str::FromStr;

    /// Every region's example numbers, and variants of each one digit
    /// shorter, one longer, and with each digit changed in turn: each must
    /// get the library's own answer, valid or not.
    #[test]
    fn agrees_with_the_phone_library_on_examples_and_their_variants() {
        let (mut valid, mut invalid) = (0, 0);
        for meta in DATABASE.iter() {
            let code = meta.country_code();
            for kind in EXAMPLE_TYPES {
                let Some(example) = meta.descriptors().get(kind).and_then(|d| d.example()) else {
                    continue;
                };
                let mut variants = vec![
                    example.to_owned(),
                    example[..example.len().saturating_sub(1)].to_owned(),
                    format!("{example}5"),
                ];
                for (at, digit) in example.char_indices() {
                    let changed = char::from_digit((digit.to_digit(10).unwrap_or(0) + 3) % 10, 10)
                        .unwrap_or('0');
                    variants.push(format!("{}{changed}{}", &example[..at], &example[at + 1..]));
                }
                for variant in variants {
                    // International form, so that numbers of every region
                    // (shared calling codes included) go through the
                    // region search.
                    let Ok(number) = phonenumber::parse(None, format!("+{code}{variant}")) else {
                        continue;
                    };
                    let theirs = phonenumber::is_valid(&number);
                    assert_eq!(
                        is_valid(&number),
                        theirs,
                        "{} {kind:?} +{code} {variant}",
                        meta.id()
                    );
                    if theirs {
                        valid += 1;
                    } else {
                        invalid += 1;
                    }
                }
            }
        }
        assert!(
            valid > 1_000 && invalid > 1_000,
            "{valid} valid, {invalid} invalid"
        );
    }

    #[test]
    fn national_numbers_read_with_a_region() {
        let germany = phonenumber::country::Id::from_str("DE").ok();
        for (text, expected) in [("015112345678", true), ("0151123", false), ("12", false)] {
            if let Ok(number) = phonenumber::parse(germany, text) {
                assert_eq!(is_valid(&number), expected, "{text}");
                assert_eq!(phonenumber::is_valid(&number), expected, "{text}");
            } else {
                assert!(!expected, "{text} should parse");
            }
        }
    }
}
