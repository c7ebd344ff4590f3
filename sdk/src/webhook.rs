//! Helpers for reading webhook requests.

use crate::types::{HttpResponse, WebhookResult};

/// Milliseconds since the Unix epoch, now (for events that carry no time).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| {
            u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX)
        })
}

/// The secret a webhook is verified with, or the 401 reply to send when the
/// operator has not configured it (logged, so the operator finds out).
pub fn require_secret(key: &str) -> Result<String, WebhookResult> {
    match crate::config::secret(key).filter(|value| !value.is_empty()) {
        Some(value) => Ok(value),
        None => {
            crate::log::error(&format!(
                "webhook refused: secret `{key}` is not configured"
            ));
            Err(WebhookResult::reply(HttpResponse::unauthorized(
                "invalid signature",
            )))
        }
    }
}

/// Log a webhook the adapter refused (any status but 200), then return it.
pub fn log_refusal(result: WebhookResult) -> WebhookResult {
    if result.response.status != 200 {
        crate::log::warn(&format!(
            "webhook refused with HTTP {}: {}",
            result.response.status,
            String::from_utf8_lossy(&result.response.body)
        ));
    }
    result
}

/// Decoded `key=value` pairs of a URL query string (`+` and `%XX` decoded).
pub fn query_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key), percent_decode(value))
        })
}

/// Decode `application/x-www-form-urlencoded` text. Invalid escapes are kept
/// as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex_value(bytes[i + 1]), hex_value(bytes[i + 2]))
            {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_value(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|value| value as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_pairs() {
        let pairs: Vec<_> = query_pairs(
            "hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=a%20b+c&flag",
        )
        .collect();
        assert_eq!(
            pairs,
            vec![
                ("hub.mode".to_owned(), "subscribe".to_owned()),
                ("hub.challenge".to_owned(), "1158201444".to_owned()),
                ("hub.verify_token".to_owned(), "a b c".to_owned()),
                ("flag".to_owned(), String::new()),
            ]
        );
    }

    #[test]
    fn keeps_invalid_escapes() {
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%e2%82%ac"), "€");
    }
}
