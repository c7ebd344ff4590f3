//! Reading a phone number written as plain digits (`015112345678` with a
//! region, or `+4915112345678`): the phone library's own steps
//! (`phonenumber::parse`), over its own metadata, with the patterns
//! compiled here ([`crate::phone_patterns`]).
//!
//! Warehouse exports write numbers this way, and for them most of the
//! library's parse is spent on its grammar for numbers as people type them
//! (punctuation, letters, extensions, `tel:` URIs), none of which can
//! occur, and on its mutex-guarded pattern cache. Anything else (spaces,
//! dashes, letters, a pattern that does not compile here) returns `None`,
//! and the caller asks the library.
//!
//! The steps, as the library takes them for plain digits: strip the
//! region's international prefix (or a leading `+`) and read the calling
//! code after it; otherwise take the region's code, and strip it from the
//! front only if the number is not valid-looking with it; then strip the
//! national prefix (the region's `national_prefix_for_parsing`, with its
//! transform rule) if what is left is still long enough. Each step is
//! marked with the library function it follows.

use std::borrow::Cow;

use phonenumber::ParseError;
use phonenumber::metadata::{DATABASE, Metadata};

use crate::phone_patterns::{Region, RegionPatterns, compiled, region_of};

/// A number read from digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Digits {
    /// The country calling code.
    pub(crate) code: u16,
    /// The national significant number, as the library prints it (leading
    /// zeros kept).
    pub(crate) national: String,
}

/// The library's shortest and longest national significant numbers.
const MIN_NATIONAL: usize = 2;
const MAX_NATIONAL: usize = 17;

/// Read `value` with `region` (the region a number without `+` is read
/// in). `None` when `value` is not plain digits or the library must be
/// asked; otherwise the library's answer.
pub(crate) fn parse_digits(
    region: Option<&'static Metadata>,
    value: &str,
) -> Option<Result<Digits, ParseError>> {
    let (plus, digits) = match value.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `is_viable`: two digits alone, or at least three (after a `+`).
    if digits.len() < if plus { 3 } else { MIN_NATIONAL } {
        return Some(Err(ParseError::NoNumber));
    }
    let region = match region {
        Some(meta) => Some((meta, compiled(meta)?)),
        None => None,
    };
    // `helper::international_prefix`.
    let idd = region
        .as_ref()
        .and_then(|(_, patterns)| patterns.international_prefix.as_ref());
    let idd_end = idd
        .and_then(|idd| idd.find(digits))
        .filter(|found| found.start() == 0)
        .map(|found| found.end());
    let mut national = digits;
    let mut from_calling_code = plus;
    if let Some(end) = idd_end
        && !digits[end..].starts_with('0')
    {
        from_calling_code = true;
        national = &digits[end..];
    }
    // `helper::country_code`.
    let (code, national) = if from_calling_code {
        if national.len() <= MIN_NATIONAL {
            return Some(Err(ParseError::TooShortNsn));
        }
        if national.starts_with('0') {
            return Some(Err(ParseError::InvalidCountryCode));
        }
        let found = (1..=3).find_map(|len| {
            let code: u16 = national[..len].parse().ok()?;
            DATABASE.by_code(&code).map(|_| (code, &national[len..]))
        });
        match found {
            Some(found) => found,
            None => return Some(Err(ParseError::InvalidCountryCode)),
        }
    } else {
        let Some((meta, patterns)) = region.as_ref() else {
            return Some(Err(ParseError::InvalidCountryCode));
        };
        let code = meta.country_code();
        let written = code.to_string();
        match national.strip_prefix(written.as_str()) {
            Some(rest)
                if !patterns.general.accepts(national)
                    || !possible_length(meta, national.len()) =>
            {
                (code, rest)
            }
            _ => (code, national),
        }
    };
    // `parser::parse`: the region whose national prefix is stripped.
    let meta = match region {
        Some(region) => Some(region),
        None => match region_of(code, national.trim_start_matches('0')) {
            Region::Found(meta) => Some((meta, compiled(meta)?)),
            Region::None => None,
            Region::AskTheLibrary => return None,
        },
    };
    let national = match meta {
        Some((meta, patterns)) => {
            let mut potential = strip_national_prefix(meta, &patterns, national)?;
            if let Some(prefix) = meta.national_prefix()
                && let Some(rest) = potential.strip_prefix(prefix)
            {
                potential = Cow::Owned(rest.to_owned());
            }
            if too_short(meta, potential.len()) {
                Cow::Borrowed(national)
            } else {
                potential
            }
        }
        None => Cow::Borrowed(national),
    };
    if national.len() < MIN_NATIONAL {
        return Some(Err(ParseError::TooShortNsn));
    }
    if national.len() > MAX_NATIONAL {
        return Some(Err(ParseError::TooLong));
    }
    // `NationalNumber::from_str`: leading zeros, then a number below 2^56.
    let significant = national.trim_start_matches('0');
    match significant.parse::<u64>() {
        Err(err) => Some(Err(ParseError::MalformedInteger(err))),
        Ok(value) if value >= 1 << 56 => Some(Err(ParseError::TooLong)),
        Ok(_) => Some(Ok(Digits {
            code,
            national: national.into_owned(),
        })),
    }
}

/// `helper::national_number`: strip the national prefix (and carrier
/// code), or apply the transform rule. `None` where the library would
/// panic (a transform rule over a pattern without groups).
fn strip_national_prefix<'a>(
    meta: &Metadata,
    patterns: &RegionPatterns,
    national: &'a str,
) -> Option<Cow<'a, str>> {
    let Some(parsing) = patterns.national_prefix_for_parsing.as_ref() else {
        let national = match meta.national_prefix() {
            Some(prefix) => national.strip_prefix(prefix).unwrap_or(national),
            None => national,
        };
        return Some(Cow::Borrowed(national));
    };
    let Some(captures) = parsing.captures(national) else {
        return Some(Cow::Borrowed(national));
    };
    let whole = captures.get(0)?;
    if whole.start() != 0 {
        return Some(Cow::Borrowed(national));
    }
    let viable = patterns.general.accepts(national);
    let last = captures.get(captures.len() - 1);
    match meta.national_prefix_transform_rule() {
        Some(transform) if last.is_some() => {
            captures.get(1)?;
            let transformed = parsing.replace(national, transform);
            if viable && !patterns.general.accepts(&transformed) {
                return Some(Cow::Borrowed(national));
            }
            Some(transformed)
        }
        _ => Some(Cow::Borrowed(&national[whole.end()..])),
    }
}

/// `validator::length(.., Type::Unknown).is_possible()`.
fn possible_length(meta: &Metadata, length: usize) -> bool {
    let general = meta.descriptors().general();
    let possible = general.possible_length();
    let Some(&minimum) = possible.first() else {
        return false;
    };
    let length = length as u16;
    general.possible_local_length().contains(&length)
        || length == minimum
        || (length > minimum
            && possible.last().is_some_and(|&max| length <= max)
            && possible.contains(&length))
}

/// `validator::length(.., Type::Unknown) == Validation::TooShort`.
fn too_short(meta: &Metadata, length: usize) -> bool {
    let general = meta.descriptors().general();
    let length = length as u16;
    match general.possible_length().first() {
        Some(&minimum) => !general.possible_local_length().contains(&length) && length < minimum,
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    /// The library's answer, in the same terms.
    fn theirs(region: Option<&Metadata>, value: &str) -> Result<Digits, String> {
        let id = region.and_then(|meta| phonenumber::country::Id::from_str(meta.id()).ok());
        phonenumber::parse(id, value)
            .map(|number| Digits {
                code: number.country().code(),
                national: number.national().to_string(),
            })
            .map_err(|err| format!("{err:?}"))
    }

    /// Numbers as exports write them, for one region: its example numbers
    /// bare, with its national prefix, its calling code, `+` and its code,
    /// and its international prefix and another region's code; each also a
    /// digit shorter and longer; and pseudo-random digit strings.
    fn inputs(meta: &Metadata, seed: &mut u64) -> Vec<String> {
        let code = meta.country_code();
        let prefix = meta.national_prefix().unwrap_or("");
        let mut examples: Vec<String> = crate::phone_validity::EXAMPLE_TYPES
            .into_iter()
            .filter_map(|kind| meta.descriptors().get(kind).and_then(|d| d.example()))
            .map(str::to_owned)
            .collect();
        examples.sort();
        examples.dedup();
        let mut inputs = Vec::new();
        for example in &examples {
            for written in [
                example.clone(),
                format!("{prefix}{example}"),
                format!("{code}{example}"),
                format!("+{code}{example}"),
                format!("+{code}{prefix}{example}"),
                format!("00{code}{example}"),
                format!("011{code}{example}"),
                format!("0049{example}"),
                format!("+0{code}{example}"),
            ] {
                inputs.push(written[..written.len() - 1].to_owned());
                inputs.push(format!("{written}7"));
                inputs.push(written);
            }
        }
        for _ in 0..60 {
            *seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let length = (*seed >> 59) as usize + 1; // 1..=32
            let digits: String = (0..length.min(20))
                .map(|i| char::from(b'0' + ((*seed >> (i * 3 % 56)) % 10) as u8))
                .collect();
            inputs.push(format!("+{digits}"));
            inputs.push(digits);
        }
        inputs
            .extend(["", "+", "1", "12", "+1", "+12", "+123", "00", "000", "0"].map(String::from));
        inputs
    }

    /// Over every region the library knows, every input that is plain
    /// digits gets the library's own answer (number or error); the
    /// library is asked only for what does not compile here.
    #[test]
    fn agrees_with_the_phone_library_for_every_region() {
        let mut seed = 7;
        let (mut read, mut refused, mut asked) = (0, 0, 0);
        for meta in DATABASE.iter() {
            let meta: &'static Metadata = DATABASE
                .by_id(meta.id())
                .unwrap_or_else(|| panic!("region {} is in the database", meta.id()));
            // Numbers are read in a region only by its two-letter id (the
            // non-geographic entities, `001`, have none).
            let own = phonenumber::country::Id::from_str(meta.id())
                .ok()
                .map(|_| meta);
            let regions = [own, None];
            for value in inputs(meta, &mut seed) {
                for region in regions {
                    if region.is_none() && !value.starts_with('+') {
                        continue;
                    }
                    let Some(ours) = parse_digits(region, &value) else {
                        asked += 1;
                        continue;
                    };
                    let ours = ours.map_err(|err| format!("{err:?}"));
                    assert_eq!(ours, theirs(region, &value), "{} {value:?}", meta.id());
                    if ours.is_ok() {
                        read += 1;
                    } else {
                        refused += 1;
                    }
                }
            }
        }
        assert!(
            read > 10_000 && refused > 1_000 && asked < read / 20,
            "{read} read, {refused} refused, {asked} left to the library"
        );
    }

    /// What is not plain digits is left to the library.
    #[test]
    fn leaves_typed_numbers_to_the_library() {
        let germany = DATABASE.by_id("DE");
        for typed in [
            "0151 1234 5678",
            "+49-151-12345678",
            "tel:+4915112345678",
            "0800-FLOWERS",
            "++4915112345678",
            "０１５１１２３４５６７８",
        ] {
            assert!(parse_digits(germany, typed).is_none(), "{typed}");
        }
        let read =
            parse_digits(germany, "015112345678").map(|read| read.map_err(|e| e.to_string()));
        assert_eq!(
            read,
            Some(Ok(Digits {
                code: 49,
                national: "15112345678".into()
            }))
        );
    }
}
