//! Audience ingestion: reading, normalising and validating CDP exports.
//!
//! An audience is a CSV file with a header line. Recognised columns (names
//! are matched case-insensitively and trimmed):
//!
//! - `profile_id`: required, non-empty and unique in the file.
//! - `phone`: E.164 (`+4915112345678`), or a national number read with the
//!   row's `country`. Stored normalised to E.164.
//! - `country`: ISO 3166 alpha-2 (`DE`, `JP`, `KR`), used to read national
//!   phone numbers.
//! - `consent_<channel>_<purpose>`, e.g. `consent_whatsapp_marketing`:
//!   yes/no/true/false/1/0/y/n (any case); empty means unknown.
//! - `<channel>_id` or `<channel>_openid`, e.g. `line_id`, `wechat_openid`:
//!   the recipient's platform user id on that channel.
//!
//! Every column, recognised or not, is also kept as a profile attribute for
//! template placeholders. A problem in one row never stops the others: it is
//! reported as a [`RowError`] with the file and line. Problems with the file
//! as a whole (unreadable, no header, no `profile_id` column, ambiguous
//! columns) are an [`IngestError`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use switchboard_contract::model::{AddressKind, Purpose};

use crate::attributes::Attributes;
use crate::phone_parse::Digits;
use crate::seen_ids::SeenIds;

/// A problem with an audience file as a whole: nothing was read from it.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    /// The file could not be opened or read.
    #[error("cannot read audience {}: {source}", file.display())]
    Read {
        /// The audience file.
        file: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The file is empty: there is no header line.
    #[error("{}: the file is empty: expected a header line with a `profile_id` column", file.display())]
    NoHeader {
        /// The audience file.
        file: PathBuf,
    },
    /// The header line could not be read (e.g. it is not UTF-8).
    #[error("{}:1: cannot read the header line: {message}", file.display())]
    BadHeader {
        /// The audience file.
        file: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The header has no `profile_id` column.
    #[error("{}: no `profile_id` column (columns: {})", file.display(), columns.join(", "))]
    MissingProfileId {
        /// The audience file.
        file: PathBuf,
        /// The columns the header has.
        columns: Vec<String>,
    },
    /// A column name is empty (e.g. a trailing comma in the header).
    #[error("{}:1: column {position} has no name", file.display())]
    EmptyColumnName {
        /// The audience file.
        file: PathBuf,
        /// The column's 1-based position.
        position: usize,
    },
    /// Two columns have the same name (ignoring case).
    #[error("{}:1: column `{column}` appears twice (columns {first} and {second})", file.display())]
    DuplicateColumn {
        /// The audience file.
        file: PathBuf,
        /// The repeated name, as written the second time.
        column: String,
        /// The first column's 1-based position.
        first: usize,
        /// The second column's 1-based position.
        second: usize,
    },
    /// A column name looks like a recognised column but cannot be used.
    #[error("{}:1: column `{column}`: {message}", file.display())]
    BadColumn {
        /// The audience file.
        file: PathBuf,
        /// The column name.
        column: String,
        /// What is wrong with it.
        message: String,
    },
}

/// A problem in one row of an audience file.
///
/// Some problems reject the row (no or duplicate `profile_id`, wrong number
/// of fields); others only make one field count as absent (an invalid
/// consent value or country) or unusable (an invalid phone number, kept as
/// [`AddressLookup::Invalid`] so the recipient's outcome can say so).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// The audience file.
    pub file: PathBuf,
    /// The 1-based line in the file where the row starts (the header is line 1).
    pub line: u64,
    /// The column the problem is in; empty when it concerns the whole row.
    pub field: String,
    /// What is wrong, in words an operator can act on.
    pub message: String,
}

impl fmt::Display for RowError {
    /// `{file}:{line}: field `{field}`: {message}`, or `{file}:{line}: {message}`
    /// when the problem concerns the whole row.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}:{}: {}", self.file.display(), self.line, self.message)
        } else {
            write!(
                f,
                "{}:{}: field `{}`: {}",
                self.file.display(),
                self.line,
                self.field,
                self.message
            )
        }
    }
}

impl std::error::Error for RowError {}

/// Which channel and purpose a consent value is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentKey {
    /// Channel name, lowercase (e.g. `whatsapp`).
    pub channel: String,
    /// The purpose.
    pub purpose: Purpose,
}

impl Ord for ConsentKey {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.channel.as_str(), self.purpose as u8)
            .cmp(&(other.channel.as_str(), other.purpose as u8))
    }
}

impl PartialOrd for ConsentKey {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// The result of looking up a recipient's address on a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressLookup {
    /// The address, in the channel's address kind (phone numbers in E.164).
    Found(String),
    /// The audience has no address for this channel.
    Missing,
    /// The audience has an address, but it is unusable; holds why.
    Invalid(String),
}

/// One person in an audience.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The CDP's identifier (the `profile_id` column), unique in the audience.
    pub profile_id: String,
    /// The 1-based line of the file the profile was read from.
    pub line: u64,
    /// The phone number: `None` when the column is absent or empty,
    /// `Some(Ok(e164))` when valid, `Some(Err(why))` when invalid.
    pub phone: Option<Result<String, String>>,
    /// The ISO 3166 alpha-2 country code, uppercase, when given and valid.
    pub country: Option<String>,
    /// Consent per channel and purpose from `consent_<channel>_<purpose>`
    /// columns, one entry per key. Empty or invalid values are absent
    /// (unknown).
    pub consents: Vec<(ConsentKey, bool)>,
    /// Platform user ids per channel (lowercase channel name) from
    /// `<channel>_id` / `<channel>_openid` columns: `Ok(id)`, or `Err(why)`
    /// when it contains spaces or control characters. Unusable ids are not
    /// reported as row errors (any `*_id` column lands here, channel or not);
    /// [`Profile::address_for`] returns them as [`AddressLookup::Invalid`].
    pub platform_ids: BTreeMap<String, Result<String, String>>,
    /// Every non-empty field by column name as written in the header,
    /// trimmed, for template placeholders.
    pub attributes: Attributes,
}

impl Profile {
    /// The audience's consent for `purpose` on `channel`: `Some(true)` yes,
    /// `Some(false)` no, `None` unknown.
    pub fn consent(&self, channel: &str, purpose: Purpose) -> Option<bool> {
        self.consents
            .iter()
            .find(|(key, _)| key.purpose == purpose && key.channel.eq_ignore_ascii_case(channel))
            .map(|&(_, consent)| consent)
    }

    /// The recipient's address on `channel`, which addresses people by `kind`.
    ///
    /// Phone-number channels use the `phone` column; platform-user-id
    /// channels use the `<channel>_id` or `<channel>_openid` column.
    pub fn address_for(&self, channel: &str, kind: AddressKind) -> AddressLookup {
        let value = match kind {
            AddressKind::PhoneNumber => self.phone.as_ref(),
            AddressKind::PlatformUserId => self.platform_ids.get(&channel.to_ascii_lowercase()),
        };
        match value {
            None => AddressLookup::Missing,
            Some(Ok(address)) => AddressLookup::Found(address.clone()),
            Some(Err(why)) => AddressLookup::Invalid(why.clone()),
        }
    }
}

/// An audience read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Audience {
    /// The file it was read from.
    pub path: PathBuf,
    /// The column names as written in the header, trimmed.
    pub columns: Vec<String>,
    /// The profiles read, in file order.
    pub profiles: Vec<Profile>,
    /// Every problem found in rows, in file order: rows rejected outright and
    /// fields treated as absent or invalid in rows that were kept.
    pub rejected: Vec<RowError>,
}

impl Audience {
    /// The lines of rows that were rejected outright (no profile was made).
    pub fn rejected_lines(&self) -> BTreeSet<u64> {
        let kept: BTreeSet<u64> = self.profiles.iter().map(|p| p.line).collect();
        self.rejected
            .iter()
            .map(|e| e.line)
            .filter(|line| !kept.contains(line))
            .collect()
    }
}

/// What a column means.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    ProfileId,
    Phone,
    Country,
    Consent(ConsentKey),
    PlatformId(String),
    Plain,
}

/// The purposes, in the contract's order, with their names.
const PURPOSES: [(Purpose, &str); 4] = [
    (Purpose::Marketing, "marketing"),
    (Purpose::Utility, "utility"),
    (Purpose::Authentication, "authentication"),
    (Purpose::Service, "service"),
];

/// Work out what a column (lowercased name) means.
fn role_of(lower: &str) -> Result<Role, String> {
    match lower {
        "profile_id" => return Ok(Role::ProfileId),
        "phone" => return Ok(Role::Phone),
        "country" => return Ok(Role::Country),
        _ => {}
    }
    if let Some(rest) = lower.strip_prefix("consent_") {
        let expected = "expected consent_<channel>_<purpose> with purpose marketing, utility, authentication or service";
        let Some((channel, purpose)) = rest.rsplit_once('_') else {
            return Err(format!("{expected}, e.g. consent_whatsapp_marketing"));
        };
        let Some((purpose, _)) = PURPOSES.iter().find(|(_, name)| *name == purpose) else {
            return Err(format!("unknown purpose `{purpose}`: {expected}"));
        };
        if channel.is_empty() {
            return Err(format!("no channel name: {expected}"));
        }
        return Ok(Role::Consent(ConsentKey {
            channel: channel.to_string(),
            purpose: *purpose,
        }));
    }
    let channel = lower
        .strip_suffix("_openid")
        .or_else(|| lower.strip_suffix("_id"));
    match channel {
        Some(channel) if !channel.is_empty() => Ok(Role::PlatformId(channel.to_string())),
        _ => Ok(Role::Plain),
    }
}

/// Parse a consent value; `Ok(None)` is unknown (empty).
fn parse_consent(value: &str) -> Result<Option<bool>, String> {
    match value.to_ascii_lowercase().as_str() {
        "" => Ok(None),
        "yes" | "y" | "true" | "1" => Ok(Some(true)),
        "no" | "n" | "false" | "0" => Ok(Some(false)),
        _ => Err(format!(
            "`{value}` is not a consent value (expected yes, no, true, false, 1, 0, y, n, or empty for unknown); treated as unknown"
        )),
    }
}

/// Parse an ISO 3166 alpha-2 country code the phone number library knows.
fn parse_country(value: &str) -> Result<(String, phonenumber::country::Id), String> {
    let upper = value.to_ascii_uppercase();
    let id = if upper.len() == 2 && upper.bytes().all(|b| b.is_ascii_uppercase()) {
        phonenumber::country::Id::from_str(&upper).ok()
    } else {
        None
    };
    match id {
        Some(id) => Ok((upper, id)),
        None => Err(format!(
            "`{value}` is not an ISO 3166 alpha-2 country code such as DE, JP or KR; treated as absent"
        )),
    }
}

/// Parse and validate a phone number, returning it in E.164.
fn parse_phone(
    value: &str,
    country: Option<&(String, phonenumber::country::Id)>,
) -> Result<String, String> {
    let international = value.starts_with('+');
    if !international && country.is_none() {
        return Err(format!(
            "`{value}` is not in international format (+<country code>…) and the row has no valid `country` to read it with"
        ));
    }
    let region = country.map(|(_, id)| *id);
    let (number, valid) = match read_number(region, value) {
        Ok(number) => number,
        Err(err) => {
            let why = match err {
                phonenumber::ParseError::InvalidCountryCode => "unknown country calling code",
                phonenumber::ParseError::TooShortAfterIdd
                | phonenumber::ParseError::TooShortNsn => "too short",
                phonenumber::ParseError::TooLong => "too long",
                phonenumber::ParseError::NoNumber
                | phonenumber::ParseError::MalformedInteger(_) => "no digits to read",
            };
            return Err(format!("`{value}` is not a phone number ({why})"));
        }
    };
    if !valid {
        return Err(match country {
            Some((code, _)) if !international => {
                format!("`{value}` is not a valid phone number in {code}")
            }
            _ => format!("`{value}` is not a valid phone number"),
        });
    }
    // E.164 is `+`, the calling code and the national significant number:
    // what the library's E.164 mode writes, without the national format it
    // also works out (and throws away for E.164), which cost 29 % of
    // ingest time.
    Ok(format!("+{}{}", number.code, number.national))
}

/// Read `value` in `region`, and say whether it is valid: plain digits by
/// [`crate::phone_parse`], the rest (and anything it leaves to the
/// library) by the phone library. Either way the library's answer, with
/// validity by [`crate::phone_validity`].
fn read_number(
    region: Option<phonenumber::country::Id>,
    value: &str,
) -> Result<(Digits, bool), phonenumber::ParseError> {
    let metadata = match region {
        Some(id) => phonenumber::metadata::DATABASE.by_id(id.as_ref()),
        None => None,
    };
    // A region the library's database lacks is left to the library.
    if (region.is_none() || metadata.is_some())
        && let Some(read) = crate::phone_parse::parse_digits(metadata, value)
    {
        let read = read?;
        if let Some(valid) = crate::phone_validity::is_valid_parts(read.code, &read.national) {
            return Ok((read, valid));
        }
    }
    let number = phonenumber::parse(region, value)?;
    let read = Digits {
        code: number.country().code(),
        national: number.national().to_string(),
    };
    Ok((read, crate::phone_validity::is_valid(&number)))
}

/// Check a platform user id; ids never contain spaces or control characters.
fn check_platform_id(value: &str) -> Result<String, String> {
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err(format!(
            "`{}` is not a platform user id: it contains spaces or control characters",
            value.escape_debug()
        ))
    } else {
        Ok(value.to_string())
    }
}

/// A column of the header.
struct Column {
    name: String,
    role: Role,
}

/// Read and check the header line.
fn read_header<R: std::io::Read>(
    file: &Path,
    reader: &mut csv::Reader<R>,
) -> Result<Vec<Column>, IngestError> {
    let header = reader.byte_headers().map_err(|err| {
        let message = err.to_string();
        match err.into_kind() {
            csv::ErrorKind::Io(source) => IngestError::Read {
                file: file.to_path_buf(),
                source,
            },
            _ => IngestError::BadHeader {
                file: file.to_path_buf(),
                message,
            },
        }
    })?;
    if header.is_empty() || (header.len() == 1 && header[0].iter().all(u8::is_ascii_whitespace)) {
        return Err(IngestError::NoHeader {
            file: file.to_path_buf(),
        });
    }
    let mut columns: Vec<Column> = Vec::with_capacity(header.len());
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut platform_columns: HashMap<String, String> = HashMap::new();
    for (index, raw) in header.iter().enumerate() {
        let position = index + 1;
        let name = std::str::from_utf8(raw)
            .map_err(|_| IngestError::BadHeader {
                file: file.to_path_buf(),
                message: format!("column {position}'s name is not valid UTF-8"),
            })?
            .trim()
            .to_string();
        if name.is_empty() {
            return Err(IngestError::EmptyColumnName {
                file: file.to_path_buf(),
                position,
            });
        }
        let lower = name.to_ascii_lowercase();
        if let Some(first) = seen.insert(lower.clone(), position) {
            return Err(IngestError::DuplicateColumn {
                file: file.to_path_buf(),
                column: name,
                first,
                second: position,
            });
        }
        let role = role_of(&lower).map_err(|message| IngestError::BadColumn {
            file: file.to_path_buf(),
            column: name.clone(),
            message,
        })?;
        if let Role::PlatformId(channel) = &role
            && let Some(other) = platform_columns.insert(channel.clone(), name.clone())
        {
            return Err(IngestError::BadColumn {
                file: file.to_path_buf(),
                column: name,
                message: format!(
                    "column `{other}` already holds the {channel} user id; keep one of them"
                ),
            });
        }
        columns.push(Column { name, role });
    }
    if !columns.iter().any(|c| c.role == Role::ProfileId) {
        return Err(IngestError::MissingProfileId {
            file: file.to_path_buf(),
            columns: columns.into_iter().map(|c| c.name).collect(),
        });
    }
    Ok(columns)
}

/// One row of an audience file, as [`AudienceReader`] yields it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudienceRow {
    /// A usable profile, with any field-level problems in it (an invalid
    /// phone number, an unknown consent value).
    Profile(Profile, Vec<RowError>),
    /// A row that could not be used at all, and why.
    Rejected(Vec<RowError>),
}

/// Reads an audience file row by row, so that an audience of any size
/// streams through the host in about constant memory (apart from about 2
/// bytes per profile id, to catch duplicates: see [`crate::seen_ids`]).
pub struct AudienceReader {
    path: PathBuf,
    reader: csv::Reader<std::io::BufReader<std::fs::File>>,
    columns: Vec<Column>,
    names: Vec<String>,
    seen: SeenIds,
    record: csv::ByteRecord,
    line_ends: LineCounter,
    /// The file's size, to estimate how many rows it holds.
    file_bytes: u64,
    /// Rows read so far.
    rows: u64,
}

/// Rows read before the number of rows in the file is estimated from the
/// bytes they took.
const ROWS_TO_ESTIMATE_FROM: u64 = 10_000;

impl AudienceReader {
    /// Open `path` and read its header. Fails only for problems with the
    /// whole file; see [`IngestError`].
    pub fn open(path: &Path) -> Result<Self, IngestError> {
        let file = std::fs::File::open(path).map_err(|source| IngestError::Read {
            file: path.to_path_buf(),
            source,
        })?;
        let file_bytes = file.metadata().map_or(0, |metadata| metadata.len());
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_reader(std::io::BufReader::with_capacity(256 * 1024, file));
        let columns = read_header(path, &mut reader)?;
        let names = columns.iter().map(|c| c.name.clone()).collect();
        Ok(Self {
            path: path.to_path_buf(),
            reader,
            columns,
            names,
            seen: SeenIds::new(),
            record: csv::ByteRecord::new(),
            line_ends: LineCounter::open(path),
            file_bytes,
            rows: 0,
        })
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The column names as written in the header, trimmed.
    pub fn columns(&self) -> &[String] {
        &self.names
    }

    /// The next row, `None` at the end of the file, or an error that stops
    /// the whole file (it could no longer be read).
    pub fn next_row(&mut self) -> Option<Result<AudienceRow, IngestError>> {
        let start = self.reader.position().byte();
        match self.reader.read_byte_record(&mut self.record) {
            Ok(false) => None,
            Ok(true) => {
                self.rows += 1;
                if self.rows == ROWS_TO_ESTIMATE_FROM {
                    let read = self.reader.position().byte().max(1);
                    let estimate = self.file_bytes.saturating_mul(self.rows) / read;
                    self.seen
                        .expect(usize::try_from(estimate).unwrap_or(usize::MAX));
                }
                let start = self.record.position().map_or(start, |p| p.byte());
                let line = self.line_ends.line_of(start);
                let mut errors = Vec::new();
                let seen = &mut self.seen;
                let profile = read_row(
                    &self.path,
                    line,
                    &self.columns,
                    &self.record,
                    |id| seen.first_line_or_insert(id, line),
                    &mut errors,
                );
                if let Some(error) = self.seen.take_error() {
                    return Some(Err(IngestError::Read {
                        file: self.path.clone(),
                        source: std::io::Error::new(
                            error.kind(),
                            format!(
                                "reading back the profile ids seen so far from a temporary file: {error}"
                            ),
                        ),
                    }));
                }
                Some(Ok(match profile {
                    Some(profile) => AudienceRow::Profile(profile, errors),
                    None => AudienceRow::Rejected(errors),
                }))
            }
            Err(err) => {
                let line = self
                    .line_ends
                    .line_of(err.position().map_or(start, |p| p.byte()));
                let description = err.to_string();
                let message = match err.into_kind() {
                    csv::ErrorKind::Io(source) => {
                        return Some(Err(IngestError::Read {
                            file: self.path.clone(),
                            source,
                        }));
                    }
                    csv::ErrorKind::UnequalLengths {
                        expected_len, len, ..
                    } => format!(
                        "the row has {len} field{} but the header has {expected_len} column{}; row skipped",
                        if len == 1 { "" } else { "s" },
                        if expected_len == 1 { "" } else { "s" },
                    ),
                    _ => format!("cannot read the row: {description}; row skipped"),
                };
                Some(Ok(AudienceRow::Rejected(vec![RowError {
                    file: self.path.clone(),
                    line,
                    field: String::new(),
                    message,
                }])))
            }
        }
    }
}

/// Maps byte offsets to 1-based line numbers by counting `\n` in the file
/// (the CSV reader's own line count is off by one for `\r\n` files).
struct LineCounter {
    file: Option<std::io::BufReader<std::fs::File>>,
    offset: u64,
    line: u64,
}

impl LineCounter {
    fn open(path: &Path) -> Self {
        Self {
            file: std::fs::File::open(path)
                .ok()
                .map(|file| std::io::BufReader::with_capacity(256 * 1024, file)),
            offset: 0,
            line: 1,
        }
    }

    /// The line a record starting at byte `start` is on. Starts only move
    /// forward. In a `\r\n` file the reader reports a record as starting at
    /// the `\n` that ends the line before, so that byte is counted too.
    fn line_of(&mut self, start: u64) -> u64 {
        use std::io::BufRead;
        let offset = start + 1;
        while self.offset < offset {
            let Some(file) = self.file.as_mut() else {
                break;
            };
            let Ok(buffer) = file.fill_buf() else {
                break;
            };
            if buffer.is_empty() {
                break;
            }
            let wanted = usize::try_from(offset - self.offset)
                .unwrap_or(usize::MAX)
                .min(buffer.len());
            self.line += buffer[..wanted].iter().filter(|&&b| b == b'\n').count() as u64;
            self.offset += wanted as u64;
            file.consume(wanted);
        }
        self.line
    }
}

impl Iterator for AudienceReader {
    type Item = Result<AudienceRow, IngestError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_row()
    }
}

/// Read a whole audience CSV file into memory (see [`AudienceReader`] to
/// stream one instead).
///
/// Each row becomes a [`Profile`] or, when it cannot be used at all, only
/// [`RowError`]s in [`Audience::rejected`]. Field-level problems in a kept
/// row are reported there too. Fails only for problems with the whole file;
/// see [`IngestError`].
pub fn read_audience(path: &Path) -> Result<Audience, IngestError> {
    let mut reader = AudienceReader::open(path)?;
    let mut audience = Audience {
        path: path.to_path_buf(),
        columns: reader.columns().to_vec(),
        profiles: Vec::new(),
        rejected: Vec::new(),
    };
    while let Some(row) = reader.next_row() {
        match row? {
            AudienceRow::Profile(profile, errors) => {
                audience.profiles.push(profile);
                audience.rejected.extend(errors);
            }
            AudienceRow::Rejected(errors) => audience.rejected.extend(errors),
        }
    }
    Ok(audience)
}

/// Read a profile from named fields rather than a CSV row: an event's
/// properties, for a triggered campaign. The names mean what audience
/// columns mean (`phone`, `country`, `consent_<channel>_<purpose>`,
/// `<channel>_id`, anything else an attribute), `profile_id` is the event's,
/// and `source` and `index` (1-based, in the batch) name it in errors.
/// Returns the profile with any field problems, or every problem when no
/// profile could be made.
pub fn profile_from_fields(
    source: &Path,
    index: u64,
    profile_id: &str,
    fields: &BTreeMap<String, String>,
) -> Result<(Profile, Vec<RowError>), Vec<RowError>> {
    let mut errors = Vec::new();
    let mut columns = vec![Column {
        name: "profile_id".to_owned(),
        role: Role::ProfileId,
    }];
    let mut record = csv::ByteRecord::new();
    record.push_field(profile_id.as_bytes());
    let mut seen: HashMap<String, String> = HashMap::new();
    seen.insert("profile_id".to_owned(), "profile_id".to_owned());
    for (name, value) in fields {
        let lower = name.trim().to_ascii_lowercase();
        let problem = |message: String| RowError {
            file: source.to_path_buf(),
            line: index,
            field: name.clone(),
            message,
        };
        if let Some(first) = seen.insert(lower.clone(), name.clone()) {
            errors.push(problem(if first == "profile_id" {
                "the profile id is the event's `profile_id`; this property is ignored".to_owned()
            } else {
                format!("the same name as `{first}` (names are not case-sensitive); ignored")
            }));
            continue;
        }
        match role_of(&lower) {
            Ok(role) => {
                columns.push(Column {
                    name: name.trim().to_owned(),
                    role,
                });
                record.push_field(value.as_bytes());
            }
            Err(message) => errors.push(problem(format!("{message}; ignored"))),
        }
    }
    match read_row(source, index, &columns, &record, |_| None, &mut errors) {
        Some(profile) => Ok((profile, errors)),
        None => Err(errors),
    }
}

/// Turn one record into a profile, pushing any problems to `errors`.
/// Returns `None` when the row is rejected.
fn read_row(
    file: &Path,
    line: u64,
    columns: &[Column],
    record: &csv::ByteRecord,
    // Called once, with the row's profile id; from there on the row is kept
    // (its id counts as seen) unless this gives the line it was first on.
    mut first_line_of: impl FnMut(&str) -> Option<u64>,
    errors: &mut Vec<RowError>,
) -> Option<Profile> {
    let row_error = |field: &str, message: String| RowError {
        file: file.to_path_buf(),
        line,
        field: field.to_string(),
        message,
    };

    // Decode every field first; a field that is not UTF-8 counts as empty.
    let mut values: Vec<&str> = Vec::with_capacity(columns.len());
    for (column, raw) in columns.iter().zip(record.iter()) {
        match std::str::from_utf8(raw) {
            Ok(value) => values.push(value.trim()),
            Err(_) => {
                errors.push(row_error(
                    &column.name,
                    "the value is not valid UTF-8; treated as empty".into(),
                ));
                values.push("");
            }
        }
    }

    // The profile id decides whether the row is kept at all.
    let id_index = columns.iter().position(|c| c.role == Role::ProfileId)?;
    let id = values[id_index];
    let id_column = &columns[id_index].name;
    if id.is_empty() {
        errors.push(row_error(
            id_column,
            "missing: every row needs a profile id; row skipped".into(),
        ));
        return None;
    }
    if let Some(first) = first_line_of(id) {
        errors.push(row_error(
            id_column,
            format!("duplicate profile id `{id}` (first on line {first}); row skipped"),
        ));
        return None;
    }

    let mut profile = Profile {
        profile_id: id.to_string(),
        line,
        phone: None,
        country: None,
        consents: Vec::new(),
        platform_ids: BTreeMap::new(),
        attributes: Attributes::with_capacity(
            columns.len(),
            record.as_slice().len() + columns.iter().map(|c| c.name.len()).sum::<usize>(),
        ),
    };

    // Country first: phone numbers are read with it.
    let mut country = None;
    for (column, value) in columns.iter().zip(&values) {
        if column.role == Role::Country && !value.is_empty() {
            match parse_country(value) {
                Ok(parsed) => country = Some(parsed),
                Err(message) => errors.push(row_error(&column.name, message)),
            }
        }
    }
    profile.country = country.as_ref().map(|(code, _)| code.clone());

    for (column, value) in columns.iter().zip(&values) {
        if !value.is_empty() {
            profile.attributes.push_new(&column.name, value);
        }
        match &column.role {
            Role::ProfileId | Role::Country | Role::Plain => {}
            Role::Phone => {
                if !value.is_empty() {
                    let phone = parse_phone(value, country.as_ref());
                    if let Err(message) = &phone {
                        errors.push(row_error(
                            &column.name,
                            format!("{message}; channels addressed by phone number will skip this profile"),
                        ));
                    }
                    profile.phone = Some(phone);
                }
            }
            Role::Consent(key) => match parse_consent(value) {
                Ok(Some(consent)) => {
                    // One column per key: names are unique regardless of case.
                    profile.consents.push((key.clone(), consent));
                }
                Ok(None) => {}
                Err(message) => errors.push(row_error(&column.name, message)),
            },
            Role::PlatformId(channel) => {
                // Not reported here: `<x>_id` may be any id column (order_id,
                // store_id), and an unusable one only matters if `<x>` is a
                // channel the campaign uses, where the outcome says why.
                if !value.is_empty() {
                    profile
                        .platform_ids
                        .insert(channel.clone(), check_platform_id(value));
                }
            }
        }
    }
    Some(profile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Our reading, validity and E.164 against the phone library's, over
    /// the example number of every type of every region the library knows
    /// (Italian leading zeros, non-geographic codes and shared calling codes
    /// among them).
    #[test]
    fn e164_is_what_the_phone_library_writes_for_every_example_number() {
        let mut compared = 0;
        for meta in phonenumber::metadata::DATABASE.iter() {
            let region = phonenumber::country::Id::from_str(meta.id()).ok();
            for kind in crate::phone_validity::EXAMPLE_TYPES {
                let Some(example) = meta.descriptors().get(kind).and_then(|d| d.example()) else {
                    continue;
                };
                let text = match region {
                    Some(_) => example.to_owned(),
                    None => format!("+{}{example}", meta.country_code()),
                };
                let Ok(number) = phonenumber::parse(region, &text) else {
                    continue;
                };
                let theirs = number.format().mode(phonenumber::Mode::E164).to_string();
                let (read, valid) = read_number(region, &text).expect("the library read it");
                assert_eq!(
                    format!("+{}{}", read.code, read.national),
                    theirs,
                    "{} {kind:?} example {example}",
                    meta.id()
                );
                assert_eq!(valid, phonenumber::is_valid(&number), "{text}");
                compared += 1;
            }
        }
        assert!(compared > 1_000, "only {compared} example numbers compared");
    }

    fn write_csv(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("audience.csv");
        let mut file = std::fs::File::create(&path).expect("create");
        file.write_all(contents.as_bytes()).expect("write");
        (dir, path)
    }

    fn read(contents: &str) -> (tempfile::TempDir, Audience) {
        let (dir, path) = write_csv(contents);
        let audience = read_audience(&path).expect("audience reads");
        (dir, audience)
    }

    fn messages(audience: &Audience) -> Vec<String> {
        let prefix = format!("{}:", audience.path.display());
        audience
            .rejected
            .iter()
            .map(|e| e.to_string().replacen(&prefix, "", 1))
            .collect()
    }

    #[test]
    fn reads_profiles_and_normalises_phones() {
        let (_dir, audience) = read(
            "profile_id,name,phone,country,consent_whatsapp_marketing,line_id\n\
             p1,Anna,+49 151 12345678,,yes,\n\
             p2,Ken,090-1234-5678,jp,N,U4af4980629\n\
             p3,Mina,010-1234-5678,KR,,\n",
        );
        assert!(audience.rejected.is_empty(), "{:?}", audience.rejected);
        assert_eq!(
            audience.columns,
            [
                "profile_id",
                "name",
                "phone",
                "country",
                "consent_whatsapp_marketing",
                "line_id"
            ]
        );
        let [anna, ken, mina] = &audience.profiles[..] else {
            panic!("three profiles expected: {:?}", audience.profiles);
        };
        assert_eq!(anna.profile_id, "p1");
        assert_eq!(anna.line, 2);
        assert_eq!(anna.phone, Some(Ok("+4915112345678".to_string())));
        assert_eq!(ken.phone, Some(Ok("+819012345678".to_string())));
        assert_eq!(ken.country.as_deref(), Some("JP"));
        assert_eq!(mina.phone, Some(Ok("+821012345678".to_string())));
        assert_eq!(anna.consent("whatsapp", Purpose::Marketing), Some(true));
        assert_eq!(ken.consent("WhatsApp", Purpose::Marketing), Some(false));
        assert_eq!(mina.consent("whatsapp", Purpose::Marketing), None);
        assert_eq!(anna.consent("whatsapp", Purpose::Utility), None);
        assert_eq!(
            anna.address_for("whatsapp", AddressKind::PhoneNumber),
            AddressLookup::Found("+4915112345678".into())
        );
        assert_eq!(
            anna.address_for("line", AddressKind::PlatformUserId),
            AddressLookup::Missing
        );
        assert_eq!(
            ken.address_for("line", AddressKind::PlatformUserId),
            AddressLookup::Found("U4af4980629".into())
        );
        assert_eq!(ken.attributes.get("name"), Some("Ken"));
        assert_eq!(ken.attributes.get("phone"), Some("090-1234-5678"));
        assert!(
            anna.attributes.get("line_id").is_none(),
            "empty values are not attributes"
        );
    }

    #[test]
    fn invalid_phone_keeps_the_profile_and_is_reported() {
        let (_dir, audience) = read(
            "profile_id,phone,country\n\
             p1,+4912,\n\
             p2,0151 12345678,\n\
             p3,12345,DE\n\
             p4,not a phone,\n\
             p5,0000,DE\n",
        );
        assert_eq!(audience.profiles.len(), 5);
        assert!(audience.rejected_lines().is_empty());
        let p1 = &audience.profiles[0];
        assert!(matches!(
            p1.address_for("whatsapp", AddressKind::PhoneNumber),
            AddressLookup::Invalid(why) if why.starts_with("`+4912` is not")
        ));
        assert_eq!(
            messages(&audience)[1..],
            [
                "3: field `phone`: `0151 12345678` is not in international format (+<country code>…) and the row has no valid `country` to read it with; channels addressed by phone number will skip this profile",
                "4: field `phone`: `12345` is not a valid phone number in DE; channels addressed by phone number will skip this profile",
                "5: field `phone`: `not a phone` is not in international format (+<country code>…) and the row has no valid `country` to read it with; channels addressed by phone number will skip this profile",
                "6: field `phone`: `0000` is not a phone number (no digits to read); channels addressed by phone number will skip this profile",
            ]
        );
        assert_eq!(audience.rejected[0].field, "phone");
        assert_eq!(audience.rejected[0].line, 2);
    }

    #[test]
    fn invalid_country_is_reported_and_ignored() {
        let (_dir, audience) = read("profile_id,phone,country\np1,+4915112345678,Germany\n");
        assert_eq!(audience.profiles[0].country, None);
        assert_eq!(
            audience.profiles[0].phone,
            Some(Ok("+4915112345678".into()))
        );
        assert_eq!(
            messages(&audience),
            [
                "2: field `country`: `Germany` is not an ISO 3166 alpha-2 country code such as DE, JP or KR; treated as absent"
            ]
        );
    }

    #[test]
    fn consent_values_are_parsed_and_bad_ones_reported() {
        let (_dir, audience) = read(
            "profile_id,consent_whatsapp_marketing,consent_line_utility,consent_kakao_talk_service\n\
             p1, YES ,0,true\n\
             p2,maybe,y,\n",
        );
        let [p1, p2] = &audience.profiles[..] else {
            panic!("two profiles expected");
        };
        assert_eq!(p1.consent("whatsapp", Purpose::Marketing), Some(true));
        assert_eq!(p1.consent("line", Purpose::Utility), Some(false));
        assert_eq!(p1.consent("kakao_talk", Purpose::Service), Some(true));
        assert_eq!(p2.consent("whatsapp", Purpose::Marketing), None);
        assert_eq!(p2.consent("line", Purpose::Utility), Some(true));
        assert_eq!(
            messages(&audience),
            [
                "3: field `consent_whatsapp_marketing`: `maybe` is not a consent value (expected yes, no, true, false, 1, 0, y, n, or empty for unknown); treated as unknown"
            ]
        );
    }

    #[test]
    fn bad_rows_are_reported_and_the_rest_is_read() {
        let (_dir, audience) = read(
            "profile_id,name\n\
             p1,Anna\n\
             ,Nobody\n\
             p1,Anna again\n\
             p2,Too,many\n\
             p3\n\
             p4,Last\n",
        );
        let ids: Vec<&str> = audience
            .profiles
            .iter()
            .map(|p| p.profile_id.as_str())
            .collect();
        assert_eq!(ids, ["p1", "p4"]);
        assert_eq!(audience.profiles[1].line, 7);
        assert_eq!(
            messages(&audience),
            [
                "3: field `profile_id`: missing: every row needs a profile id; row skipped",
                "4: field `profile_id`: duplicate profile id `p1` (first on line 2); row skipped",
                "5: the row has 3 fields but the header has 2 columns; row skipped",
                "6: the row has 1 field but the header has 2 columns; row skipped",
            ]
        );
        assert_eq!(audience.rejected_lines(), BTreeSet::from([3, 4, 5, 6]));
        let display = audience.rejected[0].to_string();
        assert!(display.starts_with(&format!(
            "{}:3: field `profile_id`:",
            audience.path.display()
        )));
    }

    #[test]
    fn quoted_multiline_fields_keep_line_numbers_right() {
        let (_dir, audience) = read("profile_id,note\np1,\"two\nlines\"\n,x\n");
        assert_eq!(
            audience.profiles[0]
                .attributes
                .get("note")
                .unwrap_or_default(),
            "two\nlines"
        );
        assert_eq!(audience.rejected[0].line, 4);
    }

    #[test]
    fn platform_ids_and_openids() {
        let (_dir, audience) = read("profile_id,wechat_openid,LINE_ID\np1,oABC123,U 1\n");
        let p = &audience.profiles[0];
        assert_eq!(
            p.address_for("wechat", AddressKind::PlatformUserId),
            AddressLookup::Found("oABC123".into())
        );
        assert!(matches!(
            p.address_for("line", AddressKind::PlatformUserId),
            AddressLookup::Invalid(_)
        ));
        assert!(audience.rejected.is_empty());
        assert_eq!(p.attributes.get("LINE_ID").unwrap_or_default(), "U 1");
    }

    #[test]
    fn non_utf8_field_is_a_field_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.csv");
        std::fs::write(&path, b"profile_id,name\np1,\xff\xfe\n").expect("write");
        let audience = read_audience(&path).expect("reads");
        assert_eq!(audience.profiles.len(), 1);
        assert!(audience.profiles[0].attributes.get("name").is_none());
        assert_eq!(
            messages(&audience),
            ["2: field `name`: the value is not valid UTF-8; treated as empty"]
        );
    }

    #[test]
    fn header_with_bom_and_spaces() {
        let (_dir, audience) = read("\u{feff} profile_id , name \np1,A\n");
        assert_eq!(audience.columns, ["profile_id", "name"]);
        assert_eq!(audience.profiles[0].profile_id, "p1");
    }

    fn read_err(contents: &str) -> String {
        let (dir, path) = write_csv(contents);
        let err = read_audience(&path).expect_err("should fail");
        let text = err.to_string();
        assert!(
            text.contains(&path.display().to_string()),
            "names the file: {text}"
        );
        let out = text.replace(&path.display().to_string(), "FILE");
        drop(dir);
        out
    }

    #[test]
    fn whole_file_problems() {
        assert_eq!(
            read_err(""),
            "FILE: the file is empty: expected a header line with a `profile_id` column"
        );
        assert_eq!(
            read_err("id,name\n1,a\n"),
            "FILE: no `profile_id` column (columns: id, name)"
        );
        assert_eq!(
            read_err("profile_id,name,Name\n"),
            "FILE:1: column `Name` appears twice (columns 2 and 3)"
        );
        assert_eq!(
            read_err("profile_id,name,\n"),
            "FILE:1: column 3 has no name"
        );
        assert_eq!(
            read_err("profile_id,consent_whatsapp_promo\n"),
            "FILE:1: column `consent_whatsapp_promo`: unknown purpose `promo`: expected consent_<channel>_<purpose> with purpose marketing, utility, authentication or service"
        );
        assert_eq!(
            read_err("profile_id,wechat_id,wechat_openid\n"),
            "FILE:1: column `wechat_openid`: column `wechat_id` already holds the wechat user id; keep one of them"
        );
    }

    #[test]
    fn unreadable_file_names_the_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("missing.csv");
        let err = read_audience(&path).expect_err("missing file");
        assert!(matches!(err, IngestError::Read { .. }));
        assert!(
            err.to_string()
                .starts_with(&format!("cannot read audience {}: ", path.display()))
        );
    }

    #[test]
    fn header_only_is_an_empty_audience() {
        let (_dir, audience) = read("profile_id,phone\n");
        assert!(audience.profiles.is_empty());
        assert!(audience.rejected.is_empty());
    }

    #[test]
    fn crlf_files_report_the_right_lines() {
        let (_dir, audience) = read(
            "profile_id,phone\r\np1,+4915112345678\r\np2,+49 123\r\np3,x,y\r\n\"p4\",+4915112345679\r\n",
        );
        let lines: Vec<u64> = audience.profiles.iter().map(|p| p.line).collect();
        assert_eq!(lines, [2, 3, 5]);
        let problems: Vec<u64> = audience.rejected.iter().map(|e| e.line).collect();
        assert_eq!(problems, [3, 4], "{:?}", audience.rejected);
    }

    #[test]
    fn the_reader_streams_rows_in_order() {
        let (_dir, path) = write_csv("profile_id,name\np1,A\n,B\np1,C\np2,D\n");
        let mut reader = AudienceReader::open(&path).unwrap();
        assert_eq!(reader.columns(), ["profile_id", "name"]);
        let rows: Vec<AudienceRow> = reader.by_ref().map(Result::unwrap).collect();
        assert!(
            matches!(&rows[0], AudienceRow::Profile(p, e) if p.profile_id == "p1" && e.is_empty())
        );
        assert!(matches!(&rows[1], AudienceRow::Rejected(e) if e[0].line == 3));
        let AudienceRow::Rejected(duplicate) = &rows[2] else {
            panic!("duplicate rejected: {rows:?}");
        };
        assert_eq!(
            duplicate[0].message,
            "duplicate profile id `p1` (first on line 2); row skipped"
        );
        assert!(matches!(&rows[3], AudienceRow::Profile(p, _) if p.line == 5));
        assert!(reader.next_row().is_none());
    }
}
