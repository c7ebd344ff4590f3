//! Pushes to the host's server URL: messages and events as WeChat's XML,
//! signed with the Token and, in safe mode, encrypted.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use reqwest::header::{CONTENT_TYPE, HeaderValue};

use super::{
    ORIGINAL_ID, WINDOW_MESSAGES, WINDOW_SECS, WeChatControlError, WeChatState, Window, api,
    check_openid, crypto,
};
use crate::webhook_sender::{SignedRequest, WebhookError};

/// `<![CDATA[text]]>`, splitting any `]]>` inside.
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

/// A text message push, as WeChat documents it.
pub(crate) fn text_xml(openid: &str, create_time: i64, content: &str, msg_id: u64) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType>{}</MsgType><Content>{}</Content><MsgId>{msg_id}</MsgId></xml>",
        cdata(ORIGINAL_ID),
        cdata(openid),
        cdata("text"),
        cdata(content)
    )
}

/// An event push; `extra` is appended inside `<xml>`.
pub(crate) fn event_xml(openid: &str, create_time: i64, event: &str, extra: &str) -> String {
    format!(
        "<xml><ToUserName>{}</ToUserName><FromUserName>{}</FromUserName><CreateTime>{create_time}</CreateTime><MsgType>{}</MsgType><Event>{}</Event>{extra}</xml>",
        cdata(ORIGINAL_ID),
        cdata(openid),
        cdata("event"),
        cdata(event)
    )
}

fn nonce() -> String {
    use rand::Rng as _;
    rand::rng()
        .random_range(100_000_000u32..=4_000_000_000)
        .to_string()
}

fn with_query(url: &str, query: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{query}")
}

/// The signed (and in safe mode encrypted) request for `message`, sent
/// about `openid`.
pub(crate) fn signed(state: &WeChatState, url: &str, openid: &str, message: &str) -> SignedRequest {
    let timestamp = state.clock.now_unix().to_string();
    let nonce = nonce();
    let signature = crypto::sorted_sha1(&[&state.token, &timestamp, &nonce]);
    let mut query =
        format!("signature={signature}&timestamp={timestamp}&nonce={nonce}&openid={openid}");
    let body = if state.lock().safe_mode {
        let encrypted = crypto::encrypt_random(&state.aes_key, &state.app_id, message);
        let msg_signature = crypto::sorted_sha1(&[&state.token, &timestamp, &nonce, &encrypted]);
        query.push_str(&format!("&encrypt_type=aes&msg_signature={msg_signature}"));
        format!(
            "<xml><ToUserName>{}</ToUserName><Encrypt>{}</Encrypt></xml>",
            cdata(ORIGINAL_ID),
            cdata(&encrypted)
        )
    } else {
        message.to_owned()
    };
    SignedRequest::json(with_query(url, &query), body)
        .with_header(CONTENT_TYPE, HeaderValue::from_static("text/xml"))
}

/// Opens the user's 48-hour window and posts a text-message push.
pub(crate) async fn deliver_inbound(
    state: &Arc<WeChatState>,
    openid: &str,
    text: &str,
    at_unix: Option<i64>,
) -> Result<String, WeChatControlError> {
    let openid = check_openid(openid)?;
    if text.is_empty() {
        return Err(WeChatControlError::Invalid("text must not be empty".into()));
    }
    let at = at_unix.unwrap_or_else(|| state.clock.now_unix());
    let msg_id = {
        use rand::Rng as _;
        rand::rng().random_range(10_000_000_000_000_000u64..=99_999_999_999_999_999)
    };
    let url = {
        let mut inner = state.lock();
        // A user message reopens the window with a fresh allowance.
        inner.windows.insert(
            openid.clone(),
            Window {
                opened_at: at,
                duration_secs: WINDOW_SECS,
                cap: WINDOW_MESSAGES,
                sent: 0,
            },
        );
        inner.users.entry(openid.clone()).or_default().unsubscribed = false;
        inner.webhook_url.clone()
    };
    let url = url.ok_or(WebhookError::NoUrl)?;
    let request = signed(state, &url, &openid, &text_xml(&openid, at, text, msg_id));
    state.sender.post(request).await?;
    state.inbound_posted.fetch_add(1, Ordering::Relaxed);
    Ok(msg_id.to_string())
}

/// Records a follow or unfollow and posts the `subscribe` / `unsubscribe` push.
pub(crate) async fn post_follow(
    state: &Arc<WeChatState>,
    openid: &str,
    subscribe: bool,
) -> Result<(), WeChatControlError> {
    let openid = check_openid(openid)?;
    let now = state.clock.now_unix();
    let url = {
        let mut inner = state.lock();
        inner.users.entry(openid.clone()).or_default().unsubscribed = !subscribe;
        if subscribe {
            api::open_follow_window(&mut inner, &openid, now);
        } else {
            inner.windows.remove(&openid);
        }
        inner.webhook_url.clone()
    };
    let url = url.ok_or(WebhookError::NoUrl)?;
    let event = if subscribe {
        "subscribe"
    } else {
        "unsubscribe"
    };
    let xml = event_xml(
        &openid,
        now,
        event,
        &format!("<EventKey>{}</EventKey>", cdata("")),
    );
    state
        .sender
        .post(signed(state, &url, &openid, &xml))
        .await?;
    state.follow_events_posted.fetch_add(1, Ordering::Relaxed);
    Ok(())
}

/// Queues the `TEMPLATESENDJOBFINISH` push of an accepted template, if
/// statuses are on and a webhook URL is set. Never blocks the API path.
pub(crate) fn schedule_template_status(
    state: &Arc<WeChatState>,
    openid: &str,
    msgid: u64,
    status: String,
) {
    let delay = {
        let inner = state.lock();
        if !inner.send_template_statuses || inner.webhook_url.is_none() {
            return;
        }
        inner.status_delay_ms
    };
    let state_for_job = Arc::clone(state);
    let openid = openid.to_owned();
    let job = async move {
        let state = state_for_job;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        let Some(url) = state.webhook_url() else {
            return;
        };
        let xml = event_xml(
            &openid,
            state.clock.now_unix(),
            "TEMPLATESENDJOBFINISH",
            &format!("<MsgID>{msgid}</MsgID><Status>{}</Status>", cdata(&status)),
        );
        match state.sender.post(signed(&state, &url, &openid, &xml)).await {
            Ok(_) => {
                state
                    .template_statuses_posted
                    .fetch_add(1, Ordering::Relaxed);
            }
            Err(error) => {
                tracing::warn!(msgid, %error, "wechat: TEMPLATESENDJOBFINISH not delivered");
            }
        }
    };
    if let Err(error) = state.sender.enqueue(job) {
        tracing::warn!(%error, "wechat: TEMPLATESENDJOBFINISH dropped");
    }
}

/// The server-URL check WeChat makes when an operator saves it: a signed
/// `GET` whose `echostr` must be echoed as the body.
pub(crate) async fn verify_url(state: &WeChatState) -> Result<bool, WeChatControlError> {
    let url = state.webhook_url().ok_or(WebhookError::NoUrl)?;
    let timestamp = state.clock.now_unix().to_string();
    let nonce = nonce();
    let echostr = nonce.repeat(2);
    let signature = crypto::sorted_sha1(&[&state.token, &timestamp, &nonce]);
    let url = with_query(
        &url,
        &format!("signature={signature}&timestamp={timestamp}&nonce={nonce}&echostr={echostr}"),
    );
    let response = state
        .client
        .get(&url)
        .send()
        .await
        .map_err(|e| WebhookError::Transport(e.to_string()))?;
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Ok(status.is_success() && body == echostr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_documented_xml() {
        assert_eq!(
            text_xml("oUser", 1348831860, "this is a test", 1234567890123456),
            "<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1348831860</CreateTime><MsgType><![CDATA[text]]></MsgType><Content><![CDATA[this is a test]]></Content><MsgId>1234567890123456</MsgId></xml>"
        );
        assert_eq!(
            event_xml("oUser", 1, "subscribe", ""),
            "<xml><ToUserName><![CDATA[gh_5f3c1a2b9d8e]]></ToUserName><FromUserName><![CDATA[oUser]]></FromUserName><CreateTime>1</CreateTime><MsgType><![CDATA[event]]></MsgType><Event><![CDATA[subscribe]]></Event></xml>"
        );
        assert_eq!(cdata("a]]>b"), "<![CDATA[a]]]]><![CDATA[>b]]>");
        assert_eq!(with_query("http://h/w", "a=1"), "http://h/w?a=1");
        assert_eq!(with_query("http://h/w?x=2", "a=1"), "http://h/w?x=2&a=1");
    }
}
