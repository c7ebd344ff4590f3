//! The host configuration that points each adapter at this simulator: the
//! `[channels.*]` tables of a `switchboard.toml`, with the simulator's
//! credentials and an `endpoints` table pointing each platform host the
//! adapter declares at the simulator (the adapters themselves call the real
//! hosts over https). Used by the end-to-end tests, and written by
//! `switchboard-simulator --host-config FILE` for the demo.

use crate::SimulatorHandle;

/// A TOML basic string for `text` (quotes, backslashes and newlines escaped).
pub fn toml_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// `allow_hosts = [hosts]` and `endpoints = { "host" = "http://simulator" … }`:
/// the operator approves exactly the platform hosts and points them at the
/// simulator.
pub fn endpoints_line(simulator: &SimulatorHandle, hosts: &[&str]) -> String {
    let base = toml_string(&simulator.base_url());
    let pairs: Vec<String> = hosts
        .iter()
        .map(|host| format!("{} = {base}", toml_string(host)))
        .collect();
    let approved: Vec<String> = hosts.iter().map(|host| toml_string(host)).collect();
    format!(
        "allow_hosts = [{}]\nendpoints = {{ {} }}\n",
        approved.join(", "),
        pairs.join(", ")
    )
}

/// `[channels.whatsapp]` with `access_token` as the bearer token.
pub fn whatsapp_section(
    simulator: &SimulatorHandle,
    access_token: &str,
    verify_token: &str,
) -> String {
    let whatsapp = simulator.whatsapp();
    format!(
        "[channels.whatsapp]\n{}settings = {{ phone_number_id = {} }}\nsecrets = {{ access_token = {}, app_secret = {}, verify_token = {} }}\n",
        endpoints_line(simulator, &["graph.facebook.com"]),
        toml_string(whatsapp.phone_number_id()),
        toml_string(access_token),
        toml_string(whatsapp.app_secret()),
        toml_string(verify_token),
    )
}

/// `[channels.line]` with `access_token` as the channel access token.
pub fn line_section(simulator: &SimulatorHandle, access_token: &str) -> String {
    format!(
        "[channels.line]\n{}secrets = {{ channel_access_token = {}, channel_secret = {} }}\n",
        endpoints_line(simulator, &["api.line.me"]),
        toml_string(access_token),
        toml_string(simulator.line().channel_secret()),
    )
}

/// `[channels.kakaotalk]` with `secret_key` as NHN's `X-Secret-Key`.
pub fn kakaotalk_section(simulator: &SimulatorHandle, secret_key: &str) -> String {
    let kakao = simulator.kakaotalk();
    format!(
        "[channels.kakaotalk]\n{}settings = {{ app_key = {}, sender_key = {} }}\nsecrets = {{ secret_key = {}, webhook_signature = {} }}\n",
        endpoints_line(simulator, &["kakaotalk-bizmessage.api.nhncloudservice.com"]),
        toml_string(kakao.app_key()),
        toml_string(kakao.sender_key()),
        toml_string(secret_key),
        toml_string(kakao.webhook_signature()),
    )
}

/// `[channels.wechat]` with `app_secret`, and a rate override if given.
pub fn wechat_section(simulator: &SimulatorHandle, app_secret: &str, rate: Option<u32>) -> String {
    let wechat = simulator.wechat();
    let rate = rate
        .map(|r| format!("messages_per_second = {r}\n"))
        .unwrap_or_default();
    format!(
        "[channels.wechat]\n{rate}{}settings = {{ app_id = {} }}\nsecrets = {{ app_secret = {}, token = {}, encoding_aes_key = {} }}\n",
        endpoints_line(simulator, &["api.weixin.qq.com"]),
        toml_string(wechat.app_id()),
        toml_string(app_secret),
        toml_string(wechat.token()),
        toml_string(wechat.encoding_aes_key()),
    )
}

/// `[channels.rcs]` for a service account; `extra_settings` is appended to
/// the settings table (e.g. `, check_capability = "true"`).
pub fn rcs_section(
    simulator: &SimulatorHandle,
    client_email: &str,
    private_key_pem: &str,
    extra_settings: &str,
) -> String {
    let rcs = simulator.rcs();
    format!(
        "[channels.rcs]\n{}settings = {{ agent_id = {}, client_email = {}{extra_settings} }}\nsecrets = {{ private_key_pem = {}, client_token = {} }}\n",
        endpoints_line(
            simulator,
            &[
                "rcsbusinessmessaging.googleapis.com",
                "oauth2.googleapis.com"
            ]
        ),
        toml_string(rcs.agent_id()),
        toml_string(client_email),
        toml_string(private_key_pem),
        toml_string(rcs.client_token()),
    )
}

/// `[channels.telegram]` with `bot_token` as the bot token.
pub fn telegram_section(simulator: &SimulatorHandle, bot_token: &str) -> String {
    format!(
        "[channels.telegram]\n{}secrets = {{ bot_token = {}, webhook_secret = {} }}\n",
        endpoints_line(simulator, &["api.telegram.org"]),
        toml_string(bot_token),
        toml_string(simulator.telegram().webhook_secret()),
    )
}

/// Every platform's table with the simulator's own credentials; WhatsApp's
/// comes first and ends the text open, so a caller may append keys to it.
pub fn all_sections(simulator: &SimulatorHandle, whatsapp_verify_token: &str) -> String {
    let rcs = simulator.rcs();
    [
        line_section(simulator, simulator.line().channel_access_token()),
        kakaotalk_section(simulator, simulator.kakaotalk().secret_key()),
        wechat_section(simulator, simulator.wechat().app_secret(), None),
        rcs_section(
            simulator,
            rcs.client_email(),
            rcs.test_only_private_key_pem(),
            "",
        ),
        telegram_section(simulator, simulator.telegram().bot_token()),
        whatsapp_section(
            simulator,
            simulator.whatsapp().access_token(),
            whatsapp_verify_token,
        ),
    ]
    .join("\n")
}

#[cfg(test)]
mod tests {
    use super::toml_string;

    #[test]
    fn escapes_toml_strings() {
        assert_eq!(toml_string("a\"b\\c\nd"), "\"a\\\"b\\\\c\\nd\"");
    }
}
