//! The phone library's metadata patterns, compiled once per region and
//! kept here, for validity ([`crate::phone_validity`]) and reading numbers
//! ([`crate::phone_parse`]).
//!
//! The library keeps its compiled patterns in one least-recently-used cache
//! (100 entries) behind a mutex, keyed by each pattern's source text: every
//! use locks it and hashes the source (hundreds of characters) twice. That
//! was a third of audience ingest time, and serialises any attempt to parse
//! on several threads.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use phonenumber::metadata::{DATABASE, Descriptor, Metadata};
use regex::{Regex, RegexBuilder};

/// A descriptor's pattern and lengths.
pub(crate) struct Pattern {
    regex: StartPattern,
    lengths: Vec<u16>,
}

impl Pattern {
    fn compile(descriptor: &Descriptor) -> Option<Self> {
        Some(Self {
            regex: StartPattern::compile(descriptor.national_number().as_str())?,
            lengths: descriptor.possible_length().to_vec(),
        })
    }

    /// The library's `Descriptor::is_match`.
    pub(crate) fn accepts(&self, national: &str) -> bool {
        (self.lengths.is_empty() || self.lengths.contains(&(national.len() as u16)))
            && self.regex.matches_at_start(national)
    }
}

/// A pattern as the library builds it (whitespace in the metadata ignored).
fn compile(source: &str) -> Option<Regex> {
    RegexBuilder::new(source)
        .ignore_whitespace(true)
        .build()
        .ok()
}

/// A pattern the library uses only to ask whether its leftmost match
/// starts at the beginning of a text. That is so exactly when some match
/// starts there, so the pattern is compiled anchored (`^(?:…)`) and asked
/// whether it matches at all: one forward scan from the start instead of a
/// search of the whole text and a reverse scan for where the match began.
pub(crate) struct StartPattern(Regex);

impl StartPattern {
    fn compile(source: &str) -> Option<Self> {
        // The newline ends a `#` comment the source may end with.
        compile(&format!("^(?:{source}\n)")).map(Self)
    }

    /// The library's `find(text).map(|m| m.start() == 0)`.
    pub(crate) fn matches_at_start(&self, text: &str) -> bool {
        self.0.is_match(text)
    }
}

/// One region's patterns, compiled.
pub(crate) struct RegionPatterns {
    pub(crate) general: Pattern,
    /// The type patterns, mobile and fixed line first: only whether any
    /// of them accepts a number is asked, and most numbers in an audience
    /// are one of those two, so the rest are rarely tried.
    types: Vec<Pattern>,
    pub(crate) leading_digits: Option<StartPattern>,
    /// The region's international dialling prefix (`00` in most of
    /// Europe).
    pub(crate) international_prefix: Option<Regex>,
    /// What the library strips as a national prefix (and carrier code).
    pub(crate) national_prefix_for_parsing: Option<Regex>,
}

impl RegionPatterns {
    /// `None` when a pattern does not compile here: the caller then asks
    /// the library.
    fn compile(meta: &Metadata) -> Option<Self> {
        let descriptors = meta.descriptors();
        let types = [
            descriptors.mobile(),
            descriptors.fixed_line(),
            descriptors.premium_rate(),
            descriptors.toll_free(),
            descriptors.shared_cost(),
            descriptors.voip(),
            descriptors.personal_number(),
            descriptors.pager(),
            descriptors.uan(),
            descriptors.voicemail(),
        ]
        .into_iter()
        .flatten()
        .map(Pattern::compile)
        .collect::<Option<Vec<_>>>()?;
        let optional = |source: Option<&str>| match source {
            Some(source) => compile(source).map(Some),
            None => Some(None),
        };
        Some(Self {
            general: Pattern::compile(descriptors.general())?,
            types,
            leading_digits: match meta.leading_digits() {
                Some(pattern) => Some(StartPattern::compile(pattern.as_str())?),
                None => None,
            },
            international_prefix: optional(meta.international_prefix().map(|p| p.as_str()))?,
            national_prefix_for_parsing: optional(
                meta.national_prefix_for_parsing().map(|p| p.as_str()),
            )?,
        })
    }

    /// The library's `number_type(..) != Type::Unknown`.
    pub(crate) fn has_type(&self, national: &str) -> bool {
        self.general.accepts(national) && self.types.iter().any(|t| t.accepts(national))
    }
}

/// Compiled regions, by the address of their (static) metadata; a region
/// whose patterns do not compile here is kept as `None`.
type Compiled = RwLock<HashMap<usize, Option<Arc<RegionPatterns>>>>;

/// The compiled patterns of `meta`'s region, or `None` when one of them
/// does not compile here (the caller then asks the library).
pub(crate) fn compiled(meta: &'static Metadata) -> Option<Arc<RegionPatterns>> {
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

/// The region a number belongs to.
pub(crate) enum Region {
    Found(&'static Metadata),
    None,
    /// A region's patterns did not compile here.
    AskTheLibrary,
}

/// The library's `validator::source_for`, followed to the metadata.
pub(crate) fn region_of(code: u16, national: &str) -> Region {
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
            Some(leading) => leading.matches_at_start(national),
            None => patterns.has_type(national),
        };
        if belongs {
            return by_region(region).map_or(Region::None, Region::Found);
        }
    }
    Region::None
}
