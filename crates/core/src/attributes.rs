//! A profile's fields by column name, for template placeholders, kept in
//! two allocations per profile.
//!
//! An audience row has a handful of fields, read on one thread and used and
//! dropped on another. As a map of owned strings that was a dozen
//! allocations per row (a name and a value per field, and the map's node),
//! most of a row's allocations, each freed across threads; the allocator
//! was 18 % of ingest's samples. Here every name and value of a row sits
//! in one string, and one vector says where each ends.

use std::collections::BTreeMap;

/// Where a template's placeholders are looked up: a profile's
/// [`Attributes`], or any map of names to values.
pub trait AttributeSource {
    /// The value of the attribute called `name`, if there is one.
    fn attribute(&self, name: &str) -> Option<&str>;
}

impl AttributeSource for BTreeMap<String, String> {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// Fields by name, in the order they were added; see the [module docs](self).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Attributes {
    /// Every name followed by its value, back to back.
    text: String,
    /// Per field: where its name ends and where its value ends in `text`
    /// (each starts where the one before it ends).
    ends: Vec<(u32, u32)>,
}

impl Attributes {
    /// No fields, with room for `fields` of them.
    pub fn with_capacity(fields: usize, bytes: usize) -> Self {
        Self {
            text: String::with_capacity(bytes),
            ends: Vec::with_capacity(fields),
        }
    }

    /// Add a field. A name already present keeps its first value (a header
    /// cannot hold a column twice, so that does not happen when reading).
    /// Fields past 4 GiB of text in one profile are not kept.
    pub fn insert(&mut self, name: &str, value: &str) {
        if self.get(name).is_none() {
            self.push_new(name, value);
        }
    }

    /// Add a field the caller knows is not there yet (a header's columns
    /// are unique), without looking.
    pub(crate) fn push_new(&mut self, name: &str, value: &str) {
        let Ok(name_end) = u32::try_from(self.text.len() + name.len()) else {
            return;
        };
        let Ok(value_end) = u32::try_from(name_end as usize + value.len()) else {
            return;
        };
        self.text.push_str(name);
        self.text.push_str(value);
        self.ends.push((name_end, value_end));
    }

    /// The value of the field called `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter()
            .find_map(|(field, value)| (field == name).then_some(value))
    }

    /// Every field, as (name, value), in the order they were added.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        let mut start = 0usize;
        self.ends.iter().map(move |&(name_end, value_end)| {
            let (name_end, value_end) = (name_end as usize, value_end as usize);
            let field = (&self.text[start..name_end], &self.text[name_end..value_end]);
            start = value_end;
            field
        })
    }
}

impl AttributeSource for Attributes {
    fn attribute(&self, name: &str) -> Option<&str> {
        self.get(name)
    }
}

impl std::fmt::Debug for Attributes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<N: AsRef<str>, V: AsRef<str>> FromIterator<(N, V)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(pairs: I) -> Self {
        let mut attributes = Attributes::default();
        for (name, value) in pairs {
            attributes.insert(name.as_ref(), value.as_ref());
        }
        attributes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_read_back_by_name_and_in_order() {
        let attributes: Attributes = [("name", "Mina"), ("city", "서울"), ("empty", "")]
            .into_iter()
            .collect();
        assert_eq!(attributes.get("name"), Some("Mina"));
        assert_eq!(attributes.get("city"), Some("서울"));
        assert_eq!(attributes.get("empty"), Some(""));
        assert_eq!(attributes.get("nam"), None);
        assert_eq!(attributes.get("namemina"), None);
        assert_eq!(
            attributes.iter().collect::<Vec<_>>(),
            [("name", "Mina"), ("city", "서울"), ("empty", "")]
        );
        assert_eq!(attributes.iter().count(), 3);
        assert_eq!(
            format!("{attributes:?}"),
            r#"{"name": "Mina", "city": "서울", "empty": ""}"#
        );
    }

    #[test]
    fn a_name_given_twice_keeps_its_first_value() {
        let mut attributes = Attributes::default();
        attributes.insert("code", "BACK20");
        attributes.insert("code", "OTHER");
        assert_eq!(attributes.get("code"), Some("BACK20"));
        assert_eq!(attributes.iter().count(), 1);
    }

    #[test]
    fn names_and_values_that_run_together_stay_apart() {
        // "ab" + "c" and "a" + "bc" share their text.
        let attributes: Attributes = [("ab", "c"), ("a", "bc")].into_iter().collect();
        assert_eq!(attributes.get("ab"), Some("c"));
        assert_eq!(attributes.get("a"), Some("bc"));
        assert!(Attributes::default().iter().next().is_none());
    }
}
