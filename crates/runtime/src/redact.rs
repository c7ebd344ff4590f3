//! Keeping secrets out of text the host stores, serves or logs: an
//! adapter's failure messages, log lines and printed output pass through a
//! [`Redactor`] that blanks the channel's secret values and the query
//! strings of URLs (platforms put tokens there: WeChat's `access_token`).

/// What replaces a secret value.
const BLANK: &str = "[secret]";
/// Secret values shorter than this are not searched for (they would blank
/// ordinary words).
const MIN_SECRET_LEN: usize = 6;

/// Blanks one channel's secret values and URL query strings.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    secrets: Vec<String>,
}

impl Redactor {
    /// A redactor for these secret values.
    pub fn new<'a>(secrets: impl IntoIterator<Item = &'a String>) -> Self {
        let mut secrets: Vec<String> = secrets
            .into_iter()
            .filter(|value| value.len() >= MIN_SECRET_LEN)
            .cloned()
            .collect();
        // Longest first, so that a secret containing another is blanked whole.
        secrets.sort_by_key(|value| std::cmp::Reverse(value.len()));
        Self { secrets }
    }

    /// `text` with secret values and URL query strings blanked.
    pub fn redact(&self, text: &str) -> String {
        let mut out = redact_url_queries(text);
        for secret in &self.secrets {
            if out.contains(secret.as_str()) {
                out = out.replace(secret.as_str(), BLANK);
            }
        }
        out
    }
}

/// Every `http://…?query` or `https://…?query` in `text` with its query
/// replaced by `?…`.
pub fn redact_url_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = find_url(rest) {
        out.push_str(&rest[..start]);
        let url = &rest[start..];
        let end = url
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | '`' | ')' | ']' | '}')
            })
            .unwrap_or(url.len());
        let token = &url[..end];
        match token.find('?') {
            Some(query) => {
                out.push_str(&token[..query]);
                out.push_str("?…");
            }
            None => out.push_str(token),
        }
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

fn find_url(text: &str) -> Option<usize> {
    let lower = text.to_ascii_lowercase();
    match (lower.find("https://"), lower.find("http://")) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_strings_are_blanked_wherever_a_url_appears() {
        assert_eq!(
            redact_url_queries(
                "error sending request for url (https://api.weixin.qq.com/cgi-bin/message/custom/send?access_token=ACCESS_TOKEN_VALUE): timed out"
            ),
            "error sending request for url (https://api.weixin.qq.com/cgi-bin/message/custom/send?…): timed out"
        );
        assert_eq!(redact_url_queries("no url here?x=1"), "no url here?x=1");
        assert_eq!(
            redact_url_queries("a HTTP://h/p?t=1 and http://h/q"),
            "a HTTP://h/p?… and http://h/q"
        );
    }

    #[test]
    fn secret_values_are_blanked_longest_first() {
        let secrets = [
            "EAAG-token-value".to_owned(),
            "EAAG-token-value-longer".to_owned(),
            "abc".to_owned(),
        ];
        let redactor = Redactor::new(&secrets);
        assert_eq!(
            redactor.redact("bad token EAAG-token-value-longer, then EAAG-token-value; abc stays"),
            "bad token [secret], then [secret]; abc stays"
        );
    }
}
