//! Whether a parsed phone number is valid: the phone library's own rule
//! (`phonenumber::is_valid`), over the library's own metadata, but with the
//! metadata's patterns compiled once per region and kept here.
//!
//! The library keeps its compiled patterns in one least-recently-used cache
//! behind a mutex, keyed by each pattern's source text: every use locks it
//! and hashes the source (hundreds of characters) twice, and a validity
//! check uses up to a dozen patterns. That was a third of audience ingest
//! time, and serialises any attempt to parse on several threads.
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

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};

/// A descriptor's pattern and lengths.
struct Pattern {
    regex: Regex,
    lengths: Vec<u16>,
}

impl Pattern {
    fn compile(descriptor: &Descriptor) -> Option<Self> {
        Some(Self {
            regex: compile(descriptor.national_number().as_str())?,
            lengths: descriptor.possible_length().to_vec(),
        })
    }

    /// The library's `Descriptor::is_match`.
    fn accepts(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && matches_at_start(&self.regex, national)
    }
}

/// A pattern as the library builds it (whitespace in the metadata ignored).
fn compile(source: &str) -> Option<Regex> {
    RegexBuilder::new(source)
        .ignore_whitespace(true)
        .build()
        .ok()
}

/// The leftmost match starts at the beginning (the library's test).
fn matches_at_start(regex: &Regex, text: &str) -> bool {
    regex.find(text).is_some_and(|found| found.start() == 0)
}

/// One region's patterns, compiled.
struct RegionPatterns {
    general: Pattern,
    /// The type patterns, in the order the library tries them.
    types: Vec<Pattern>,
    leading_digits: Option<Regex>,
}

impl RegionPatterns {
    /// `None` when a pattern does not compile here: the caller then asks
    /// the library.
    fn compile(meta: &Metadata) -> Option<Self> {
        let descriptors = meta.descriptors();
        let types = [
            descriptors.premium_rate(),
            descriptors.toll_free(),
            descriptors.shared_cost(),
            descriptors.voip(),
            descriptors.personal_number(),
            descriptors.pager(),
            descriptors.uan(),
            descriptors.voicemail(),
            descriptors.fixed_line(),
            descriptors.mobile(),
        ]
        .into_iter()
        .flatten()
        .map(Pattern::compile)
        .collect::<Option<Vec<_>>>()?;
        let leading_digits = match meta.leading_digits() {
            Some(pattern) => Some(compile(pattern.as_str())?),
            None => None,
        };
        Some(Self {
            general: Pattern::compile(descriptors.general())?,
            types,
            leading_digits,
        })
    }

    /// The library's `number_type(..) != Type::Unknown`.
    fn has_type(&self, national: &str) -> bool {
        self.general.accepts(national) && self.types.iter().any(|t| t.accepts(national))
    }
}

/// Compiled regions, by the address of their (static) metadata; a region
/// whose patterns do not compile here is kept as `None`.
type Compiled = RwLock<HashMap<usize, Option<Arc<RegionPatterns>>>>;

fn compiled(meta: &'static Metadata) -> Option<Arc<RegionPatterns>> {
    static COMPILED: OnceLock<Compiled> = OnceLock::new();
    let regions = COMPILED.get_or_init(Compiled::default);
    let key = std::ptr::from_ref(meta) as usize;
    if let Some(found) = regions
        .read()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .get(&key)
    {
        return found.clone();
    }
    let patterns = RegionPatterns::compile(meta).map(Arc::new);
    regions
        .write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(key)
        .or_insert(patterns)
        .clone()
}

/// Whether `number` is a valid number: the same answer as
/// `phonenumber::is_valid`; see the [module docs](self).
pub(crate) fn is_valid(number: &phonenumber::PhoneNumber) -> bool {
    let code = number.country().code();
    let national = number.national().to_string();
    match region_of(code, &national) {
        Region::Found(meta) => match compiled(meta) {
            Some(patterns) => patterns.has_type(&national),
            None => phonenumber::is_valid(number),
        },
        Region::None => false,
        Region::AskTheLibrary => phonenumber::is_valid(number),
    }
}

enum Region {
    Found(&'static Metadata),
    None,
    /// A region's patterns did not compile here.
    AskTheLibrary,
}

/// The library's `validator::source_for`, followed to the metadata.
fn region_of(code: u16, national: &str) -> Region {
    let database = &*DATABASE;
    let Some(regions) = database.region(&code) else {
        return Region::None;
    };
    let by_region = |region: &str| {
        region
            .parse::<phonenumber::country::Id>()
            .ok()
            .and_then(|_| database.by_id(region))
    };
    if let [only] = regions.as_slice() {
        let meta = if *only == "001" {
            database
                .by_code(&code)
                .and_then(|metas| metas.into_iter().next())
        } else {
            by_region(only)
        };
        return meta.map_or(Region::None, Region::Found);
    }
    for region in regions {
        let Some(meta) = database.by_id(region) else {
            return Region::AskTheLibrary;
        };
        let Some(patterns) = compiled(meta) else {
            return Region::AskTheLibrary;
        };
        let belongs = match &patterns.leading_digits {
            Some(leading) => matches_at_start(leading, national),
            None => patterns.has_type(national),
        };
        if belongs {
            return by_region(region).map_or(Region::None, Region::Found);
        }
    }
    Region::None
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
