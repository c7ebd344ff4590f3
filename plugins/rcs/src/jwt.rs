//! OAuth 2.0 for a Google service account: the adapter signs a JWT assertion
//! with the service account's RSA key (RS256) and exchanges it for an access
//! token at the token endpoint (the JWT-bearer grant, RFC 7523).
//!
//! Everything here is pure and natively tested; the adapter layer reads the
//! key, the clock and the settings and sends the request.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1::DecodeRsaPrivateKey as _;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey as _;
use rsa::signature::{SignatureEncoding as _, Signer as _};
use serde::{Deserialize, Serialize};
use switchboard_sdk::types::{Failure, RateLimitScope, SendError};

/// The OAuth scope of the RBM API.
pub const SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";
/// The JWT-bearer grant type (RFC 7523).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// How long an assertion is valid, in seconds: Google accepts at most an hour.
pub const ASSERTION_LIFETIME_SECS: u64 = 3_600;
/// Lifetime assumed for a token whose reply has no `expires_in`: Google's
/// access tokens last an hour (not stated in the RBM docs themselves).
pub const DEFAULT_TOKEN_LIFETIME_SECS: u32 = 3_600;

/// The JOSE header of every assertion.
const HEADER: &str = r#"{"alg":"RS256","typ":"JWT"}"#;

/// The claims of a service-account assertion.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// The service account's email (`client_email`).
    pub iss: String,
    /// The scope asked for.
    pub scope: String,
    /// The token endpoint the assertion is meant for.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
}

impl Claims {
    /// The claims for `client_email` asking `token_url` for the RBM scope at
    /// `now` (Unix seconds), valid for [`ASSERTION_LIFETIME_SECS`].
    pub fn new(client_email: &str, token_url: &str, now: u64) -> Self {
        Self {
            iss: client_email.to_owned(),
            scope: SCOPE.to_owned(),
            aud: token_url.to_owned(),
            iat: now,
            exp: now.saturating_add(ASSERTION_LIFETIME_SECS),
        }
    }
}

/// Why the service account's key could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(String);

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

impl From<KeyError> for SendError {
    /// A key that cannot sign is a configuration problem: `auth-failed`.
    fn from(error: KeyError) -> Self {
        SendError::AuthFailed(Failure::new("", error.0))
    }
}

/// The service account's key, ready to sign assertions.
pub struct ServiceAccountKey(SigningKey<rsa::sha2::Sha256>);

impl std::fmt::Debug for ServiceAccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServiceAccountKey(..)")
    }
}

impl ServiceAccountKey {
    /// Read a PEM private key: PKCS#8 (`BEGIN PRIVATE KEY`, what Google's
    /// key files hold) or PKCS#1 (`BEGIN RSA PRIVATE KEY`). Literal `\n`
    /// sequences, as in a key copied out of the JSON key file, are read as
    /// line breaks. Errors never contain key material.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let pem = pem.trim().replace("\\n", "\n");
        let key = if pem.starts_with("-----BEGIN RSA PRIVATE KEY-----") {
            rsa::PrivateKey::from_pkcs1_pem(&pem).map_err(|error| {
                KeyError(format!(
                    "secret `private_key_pem` is not a valid PKCS#1 RSA private key: {error}"
                ))
            })?
        } else if pem.starts_with("-----BEGIN PRIVATE KEY-----") {
            rsa::PrivateKey::from_pkcs8_pem(&pem).map_err(|error| {
                KeyError(format!(
                    "secret `private_key_pem` is not a valid PKCS#8 RSA private key: {error}"
                ))
            })?
        } else {
            return Err(KeyError(
                "secret `private_key_pem` is not a PEM private key: expected `-----BEGIN PRIVATE KEY-----` (the `private_key` of the service account's JSON key file)".into(),
            ));
        };
        Ok(Self(SigningKey::new(key)))
    }

    /// `base64url(RSASSA-PKCS1-v1_5-SHA256(message))`.
    fn sign(&self, message: &[u8]) -> Result<String, KeyError> {
        let signature = self
            .0
            .try_sign(message)
            .map_err(|error| KeyError(format!("signing the JWT assertion failed: {error}")))?;
        Ok(URL_SAFE_NO_PAD.encode(signature.to_vec()))
    }
}

/// `base64url(header) "." base64url(claims)`, the part of a JWT that is signed.
pub fn signing_input(claims: &Claims) -> String {
    // Serialising plain strings and integers cannot fail.
    let claims = serde_json::to_vec(claims).unwrap_or_default();
    format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(HEADER),
        URL_SAFE_NO_PAD.encode(claims)
    )
}

/// The signed assertion: `signing_input "." base64url(signature)`.
pub fn assertion(key: &ServiceAccountKey, claims: &Claims) -> Result<String, KeyError> {
    let input = signing_input(claims);
    let signature = key.sign(input.as_bytes())?;
    Ok(format!("{input}.{signature}"))
}

/// The form-encoded body of the token request.
pub fn token_request_body(assertion: &str) -> String {
    format!(
        "grant_type={}&assertion={}",
        form_encode(GRANT_TYPE),
        form_encode(assertion)
    )
}

/// `application/x-www-form-urlencoded` encoding of one value.
pub fn form_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(byte));
            }
            b' ' => out.push('+'),
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

/// A successful token reply: `{"access_token","expires_in","token_type":"Bearer"}`.
#[derive(Debug, Deserialize)]
struct TokenReply {
    #[serde(default)]
    access_token: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    token_type: Option<String>,
}

/// An OAuth error reply: `{"error":"invalid_grant","error_description":"…"}`.
#[derive(Debug, Default, Deserialize)]
struct TokenErrorReply {
    #[serde(default)]
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Interpret the token endpoint's reply: the access token and its lifetime
/// in seconds, or why there is none.
///
/// Nothing has been sent to a recipient yet, so every failure is safe to
/// retry as far as duplicates go: a refusal (400 `invalid_grant`, 401
/// `invalid_client`, 403) is `auth-failed`, since only the configuration
/// can fix it; 429 is a sender rate limit; 5xx and a 2xx without a bearer
/// token are `transient`.
pub fn interpret_token_response(
    status: u16,
    retry_after_ms: Option<u32>,
    body: &[u8],
) -> Result<(String, u32), SendError> {
    if (200..300).contains(&status) {
        let reply = serde_json::from_slice::<TokenReply>(body).ok();
        return match reply {
            Some(reply)
                if !reply.access_token.is_empty()
                    && reply
                        .token_type
                        .as_deref()
                        .is_none_or(|kind| kind.eq_ignore_ascii_case("bearer")) =>
            {
                let lifetime = reply
                    .expires_in
                    .map_or(DEFAULT_TOKEN_LIFETIME_SECS, |secs| {
                        u32::try_from(secs).unwrap_or(u32::MAX)
                    });
                Ok((reply.access_token, lifetime))
            }
            _ => Err(SendError::Transient(Failure::new(
                "",
                format!(
                    "the token endpoint answered HTTP {status} without a bearer access token: `{}`",
                    snippet(body)
                ),
            ))),
        };
    }
    let reply = serde_json::from_slice::<TokenErrorReply>(body).unwrap_or_default();
    let code = reply.error.clone();
    let detail = match (reply.error.is_empty(), reply.error_description) {
        (false, Some(description)) if !description.is_empty() => {
            format!("{}: {description}", reply.error)
        }
        (false, _) => reply.error,
        (true, _) => format!("`{}`", snippet(body)),
    };
    let message =
        format!("the token endpoint refused the service account (HTTP {status}): {detail}");
    Err(match status {
        429 => SendError::rate_limited(
            RateLimitScope::Sender,
            retry_after_ms,
            Failure::new(code, message),
        ),
        500..=599 => SendError::Transient(Failure::new(code, message)),
        _ => SendError::AuthFailed(Failure::new(
            code,
            format!(
                "{message}; check `client_email`, `private_key_pem` and that the service account may use RBM"
            ),
        )),
    })
}

/// The first 200 characters of a body, for messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The simulator's test-only service-account key (never a real one).
    const TEST_KEY: &str =
        include_str!("../../../tests/simulator/src/rcs/test_only_private_key.pem");
    const TOKEN_URL: &str = "https://oauth2.googleapis.com/token";
    const EMAIL: &str = "sim-agent@sim-project.iam.gserviceaccount.com";

    fn decode_json(part: &str) -> serde_json::Value {
        let bytes = URL_SAFE_NO_PAD.decode(part).expect("base64url");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[test]
    fn claims_carry_issuer_scope_audience_and_an_hour() {
        let claims = Claims::new(EMAIL, TOKEN_URL, 1_700_000_000);
        let input = signing_input(&claims);
        let (header, body) = input.split_once('.').expect("two parts");
        assert_eq!(
            decode_json(header),
            serde_json::json!({"alg": "RS256", "typ": "JWT"})
        );
        assert_eq!(
            decode_json(body),
            serde_json::json!({
                "iss": EMAIL,
                "scope": "https://www.googleapis.com/auth/rcsbusinessmessaging",
                "aud": TOKEN_URL,
                "iat": 1_700_000_000u64,
                "exp": 1_700_003_600u64,
            })
        );
        assert!(!input.contains('=') && !input.contains('+') && !input.contains('/'));
    }

    #[test]
    fn assertion_signature_verifies_with_the_public_key() {
        use rsa::pkcs8::DecodePublicKey as _;
        use rsa::signature::Verifier as _;
        let key = ServiceAccountKey::from_pem(TEST_KEY).expect("test key");
        let claims = Claims::new(EMAIL, TOKEN_URL, 1_700_000_000);
        let jwt = assertion(&key, &claims).expect("signs");
        let (input, signature) = jwt.rsplit_once('.').expect("three parts");
        assert_eq!(input, signing_input(&claims));
        let public = rsa::PublicKey::from_public_key_pem(include_str!(
            "../../../tests/simulator/src/rcs/test_only_public_key.pem"
        ))
        .expect("public key");
        let verifier = rsa::pkcs1v15::VerifyingKey::<rsa::sha2::Sha256>::new(public);
        let signature = rsa::pkcs1v15::Signature::try_from(
            URL_SAFE_NO_PAD
                .decode(signature)
                .expect("base64url")
                .as_slice(),
        )
        .expect("signature bytes");
        verifier
            .verify(input.as_bytes(), &signature)
            .expect("the signature verifies");
        // A changed claim no longer verifies.
        let forged = signing_input(&Claims::new("evil@example.com", TOKEN_URL, 1_700_000_000));
        assert!(verifier.verify(forged.as_bytes(), &signature).is_err());
    }

    #[test]
    fn rs256_matches_openssl() {
        // testdata/openssl_rs256_signature.txt is
        // `printf %s "$(cat testdata/openssl_rs256_signing_input.txt)" | openssl dgst -sha256 -sign test_only_private_key.pem | basenc --base64url -w0 | tr -d =`:
        // an independent implementation signing the same input.
        let key = ServiceAccountKey::from_pem(TEST_KEY).expect("test key");
        let claims = Claims::new(EMAIL, TOKEN_URL, 1_700_000_000);
        assert_eq!(
            signing_input(&claims),
            include_str!("../testdata/openssl_rs256_signing_input.txt").trim()
        );
        let jwt = assertion(&key, &claims).expect("signs");
        let signature = jwt.rsplit('.').next().expect("signature");
        assert_eq!(
            signature,
            include_str!("../testdata/openssl_rs256_signature.txt").trim()
        );
    }

    #[test]
    fn reads_escaped_newlines_and_rejects_what_is_not_a_key() {
        let escaped = TEST_KEY.trim().replace('\n', "\\n");
        assert!(ServiceAccountKey::from_pem(&escaped).is_ok());
        let error = ServiceAccountKey::from_pem("not a key").expect_err("rejected");
        assert!(
            error.to_string().contains("not a PEM private key"),
            "{error}"
        );
        let broken = TEST_KEY.replacen("MII", "XXX", 1);
        let error = ServiceAccountKey::from_pem(&broken).expect_err("rejected");
        assert!(error.to_string().contains("not a valid PKCS#8"), "{error}");
        assert!(
            !error.to_string().contains("XXX"),
            "no key material: {error}"
        );
        match SendError::from(error) {
            SendError::AuthFailed(failure) => assert!(failure.message.contains("private_key_pem")),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn token_request_is_form_encoded() {
        assert_eq!(
            token_request_body("aa.bb_-.c"),
            "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=aa.bb_-.c"
        );
        assert_eq!(form_encode("a b/+é"), "a+b%2F%2B%C3%A9");
    }

    #[test]
    fn token_reply_gives_token_and_lifetime() {
        let body = br#"{"access_token":"ya29.c.abc","expires_in":3599,"token_type":"Bearer"}"#;
        assert_eq!(
            interpret_token_response(200, None, body).expect("token"),
            ("ya29.c.abc".to_owned(), 3_599)
        );
        let body = br#"{"access_token":"ya29.x"}"#;
        assert_eq!(
            interpret_token_response(200, None, body).expect("token"),
            ("ya29.x".to_owned(), DEFAULT_TOKEN_LIFETIME_SECS)
        );
    }

    #[test]
    fn token_reply_without_a_bearer_token_is_transient() {
        for body in [
            &b"{}"[..],
            b"nope",
            br#"{"access_token":"","token_type":"Bearer"}"#,
            br#"{"access_token":"x","token_type":"MAC"}"#,
        ] {
            match interpret_token_response(200, None, body) {
                Err(SendError::Transient(failure)) => {
                    assert!(failure.message.contains("without a bearer access token"));
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn token_refusals_are_classified() {
        let body = br#"{"error":"invalid_grant","error_description":"Invalid JWT Signature."}"#;
        match interpret_token_response(400, None, body) {
            Err(SendError::AuthFailed(failure)) => {
                assert_eq!(failure.code, "invalid_grant");
                assert!(
                    failure
                        .message
                        .contains("(HTTP 400): invalid_grant: Invalid JWT Signature."),
                    "{}",
                    failure.message
                );
                assert!(failure.message.contains("client_email"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            interpret_token_response(401, None, br#"{"error":"invalid_client"}"#),
            Err(SendError::AuthFailed(_))
        ));
        match interpret_token_response(429, Some(2_000), b"slow down") {
            Err(SendError::RateLimited(limited)) => {
                assert_eq!(limited.scope, RateLimitScope::Sender);
                assert_eq!(limited.retry_after_ms, Some(2_000));
                assert!(limited.failure.message.contains("`slow down`"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(
            interpret_token_response(503, None, b""),
            Err(SendError::Transient(_))
        ));
    }
}
