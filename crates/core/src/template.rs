//! Placeholder rendering for campaign content.
//!
//! Campaign text, template parameter values and template links may contain
//! `{{column}}` placeholders, filled from a profile's audience attributes
//! (one attribute per audience column). Whitespace inside the braces is
//! allowed: `{{ name }}` is the same placeholder as `{{name}}`.
//!
//! The syntax is deliberately small: there is no escaping, no filters and no
//! default values. A single `{` or `}` is ordinary text; `{{` must be closed
//! by `}}` and a `}}` that closes nothing is an error, so typos such as
//! `{name}}` are caught before anything is sent.

use crate::attributes::AttributeSource;

/// Why a text could not be parsed or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A placeholder names an attribute that the profile does not have, or
    /// whose value is empty. Holds the attribute name.
    #[error(
        "no value for placeholder `{{{{{0}}}}}`: the profile's `{0}` attribute is empty or absent"
    )]
    MissingAttribute(String),
    /// The braces do not pair up. Holds a description with the character
    /// position (1-based) of the problem.
    #[error("{0}")]
    Syntax(String),
}

/// One parsed piece of a text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Piece<'a> {
    /// Text copied as is.
    Literal(&'a str),
    /// A placeholder, holding the trimmed attribute name.
    Placeholder(&'a str),
}

/// The 1-based character position of byte offset `byte` in `text`.
fn char_position(text: &str, byte: usize) -> usize {
    text[..byte].chars().count() + 1
}

/// Split `text` into literal pieces and placeholders.
fn parse(text: &str) -> Result<Vec<Piece<'_>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut pos = 0;
    while pos < text.len() {
        let rest = &text[pos..];
        let open = rest.find("{{");
        if let Some(close) = rest.find("}}")
            && open.is_none_or(|open| close < open)
        {
            return Err(TemplateError::Syntax(format!(
                "`}}}}` at character {} closes no `{{{{`",
                char_position(text, pos + close)
            )));
        }
        let Some(open) = open else {
            pieces.push(Piece::Literal(rest));
            break;
        };
        if open > 0 {
            pieces.push(Piece::Literal(&rest[..open]));
        }
        let inner_start = pos + open + 2;
        let Some(len) = text[inner_start..].find("}}") else {
            return Err(TemplateError::Syntax(format!(
                "`{{{{` at character {} is never closed with `}}}}`",
                char_position(text, pos + open)
            )));
        };
        let inner = &text[inner_start..inner_start + len];
        if let Some(brace) = inner.find(['{', '}']) {
            return Err(TemplateError::Syntax(format!(
                "unexpected `{}` at character {} inside the placeholder opened at character {}",
                &inner[brace..brace + 1],
                char_position(text, inner_start + brace),
                char_position(text, pos + open)
            )));
        }
        let name = inner.trim();
        if name.is_empty() {
            return Err(TemplateError::Syntax(format!(
                "empty placeholder at character {}: write a column name between the braces",
                char_position(text, pos + open)
            )));
        }
        pieces.push(Piece::Placeholder(name));
        pos = inner_start + len + 2;
    }
    Ok(pieces)
}

/// The attribute names `text` uses, each once, in order of first use.
///
/// Used to check a campaign against the audience's columns before sending.
/// Fails with [`TemplateError::Syntax`] when the braces do not pair up.
pub fn placeholders(text: &str) -> Result<Vec<String>, TemplateError> {
    let mut names: Vec<String> = Vec::new();
    for piece in parse(text)? {
        if let Piece::Placeholder(name) = piece
            && !names.iter().any(|known| known == name)
        {
            names.push(name.to_string());
        }
    }
    Ok(names)
}

/// Fill every `{{name}}` placeholder in `text` from `attributes`.
///
/// Fails with [`TemplateError::MissingAttribute`] for the first placeholder
/// whose attribute is absent or empty (a message with a hole in it is worse
/// than no message), and with [`TemplateError::Syntax`] when the braces do
/// not pair up.
pub fn render(text: &str, attributes: &impl AttributeSource) -> Result<String, TemplateError> {
    let pieces = parse(text)?;
    let mut out = String::with_capacity(text.len());
    for piece in pieces {
        match piece {
            Piece::Literal(literal) => out.push_str(literal),
            Piece::Placeholder(name) => match attributes.attribute(name) {
                Some(value) if !value.is_empty() => out.push_str(value),
                _ => return Err(TemplateError::MissingAttribute(name.to_string())),
            },
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    fn attrs(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn renders_placeholders_with_and_without_spaces() {
        let a = attrs(&[("name", "Mina"), ("code", "BACK20")]);
        assert_eq!(
            render("Hi {{name}}, use {{ code }} — {{name}}!", &a).unwrap(),
            "Hi Mina, use BACK20 — Mina!"
        );
    }

    #[test]
    fn text_without_placeholders_is_unchanged() {
        let a = attrs(&[]);
        assert_eq!(render("", &a).unwrap(), "");
        assert_eq!(
            render("single { and } braces are text", &a).unwrap(),
            "single { and } braces are text"
        );
        assert_eq!(render("{a}", &a).unwrap(), "{a}");
    }

    #[test]
    fn handles_non_ascii_around_placeholders() {
        let a = attrs(&[("name", "민아")]);
        assert_eq!(
            render("안녕하세요 {{name}}님", &a).unwrap(),
            "안녕하세요 민아님"
        );
    }

    #[test]
    fn missing_and_empty_attributes_are_errors() {
        let a = attrs(&[("name", "")]);
        let err = render("Hi {{name}}", &a).unwrap_err();
        assert_eq!(err, TemplateError::MissingAttribute("name".into()));
        assert_eq!(
            err.to_string(),
            "no value for placeholder `{{name}}`: the profile's `name` attribute is empty or absent"
        );
        assert_eq!(
            render("Hi {{ city }}", &a).unwrap_err(),
            TemplateError::MissingAttribute("city".into())
        );
    }

    #[test]
    fn unclosed_placeholder_is_a_syntax_error() {
        let err = render("Hi {{name", &attrs(&[("name", "x")])).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`{{` at character 4 is never closed with `}}`"
        );
    }

    #[test]
    fn stray_close_is_a_syntax_error() {
        let err = placeholders("Hi {name}}").unwrap_err();
        assert_eq!(err.to_string(), "`}}` at character 9 closes no `{{`");
    }

    #[test]
    fn nested_or_empty_placeholders_are_syntax_errors() {
        let err = placeholders("{{{name}}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unexpected `{` at character 3 inside the placeholder opened at character 1"
        );
        let err = placeholders("x {{  }}").unwrap_err();
        assert_eq!(
            err.to_string(),
            "empty placeholder at character 3: write a column name between the braces"
        );
    }

    #[test]
    fn positions_count_characters_not_bytes() {
        let err = placeholders("안녕 {{name").unwrap_err();
        assert_eq!(
            err.to_string(),
            "`{{` at character 4 is never closed with `}}`"
        );
    }

    #[test]
    fn placeholders_are_listed_once_in_order() {
        assert_eq!(
            placeholders("{{b}} {{ a }} {{b}}").unwrap(),
            vec!["b".to_string(), "a".to_string()]
        );
        assert!(placeholders("plain").unwrap().is_empty());
    }
}
