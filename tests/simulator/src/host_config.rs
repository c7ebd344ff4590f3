//! The host configuration that points each adapter at this simulator: the
//! `[channels.*]` tables of a `switchboard.toml`, with the simulator's
//! credentials. Used by the end-to-end tests, and written by
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

/// `[channels.whatsapp]` with `access_token` as the bearer token.
pub fn whatsapp_section(
    simulator: &SimulatorHandle,
    access_token: &str,
    verify_token: &str,
) -> String {
    let whatsapp = simulator.whatsapp();
    format!(
        "[channels.whatsapp]\nsettings = {{ base_url = {}, phone_number_id = {} }}\nsecrets = {{ access_token = {}, app_secret = {}, verify_token = {} }}\n",
        toml_string(&simulator.base_url()),
        toml_string(whatsapp.phone_number_id()),
        toml_string(access_token),
        toml_string(whatsapp.app_secret()),
        toml_string(verify_token),
    )
}

/// `[channels.line]` with `access_token` as the channel access token.
pub fn line_section(simulator: &SimulatorHandle, access_token: &str) -> String {
    format!(
        "[channels.line]\nsettings = {{ base_url = {} }}\nsecrets = {{ channel_access_token = {}, channel_secret = {} }}\n",
        toml_string(&simulator.base_url()),
        toml_string(access_token),
        toml_string(simulator.line().channel_secret()),
    )
}

/// `[channels.kakaotalk]` with `secret_key` as NHN's `X-Secret-Key`.
pub fn kakaotalk_section(simulator: &SimulatorHandle, secret_key: &str) -> String {
    let kakao = simulator.kakaotalk();
    format!(
        "[channels.kakaotalk]\nsettings = {{ base_url = {}, app_key = {}, sender_key = {} }}\nsecrets = {{ secret_key = {}, webhook_signature = {} }}\n",
        toml_string(&simulator.base_url()),
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
        "[channels.wechat]\n{rate}settings = {{ base_url = {}, app_id = {} }}\nsecrets = {{ app_secret = {}, token = {}, encoding_aes_key = {} }}\n",
        toml_string(&simulator.base_url()),
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
    let base = simulator.base_url();
    format!(
        "[channels.rcs]\nsettings = {{ base_url = {}, token_url = {}, agent_id = {}, client_email = {}{extra_settings} }}\nsecrets = {{ private_key_pem = {}, client_token = {} }}\n",
        toml_string(&base),
        toml_string(&format!("{base}/token")),
        toml_string(rcs.agent_id()),
        toml_string(client_email),
        toml_string(private_key_pem),
        toml_string(rcs.client_token()),
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
