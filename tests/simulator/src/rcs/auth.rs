//! The simulated Google OAuth token endpoint's check of a service-account
//! JWT assertion: an RS256 signature by the configured public key, the
//! issuer, audience and scope, and a short-lived, current validity period.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::pkcs1v15::{Signature, VerifyingKey};
use rsa::sha2::Sha256;
use rsa::signature::Verifier as _;
use serde::Deserialize;

use super::error::OAuthError;

/// The scope an RBM token must be asked for.
pub const RBM_SCOPE: &str = "https://www.googleapis.com/auth/rcsbusinessmessaging";
/// The longest validity an assertion may claim, in seconds.
pub const MAX_ASSERTION_LIFETIME_SECS: i64 = 3_600;
/// How far in the future `iat` may be (clock skew), in seconds.
pub const CLOCK_SKEW_SECS: i64 = 300;

/// The claims of a verified assertion.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Claims {
    /// The service account's email.
    pub iss: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// The token endpoint it is meant for.
    pub aud: String,
    /// Issued at, Unix seconds.
    pub iat: i64,
    /// Expires at, Unix seconds.
    pub exp: i64,
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
}

/// Why an assertion was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AssertionError {
    /// Not three base64url parts with JSON header and claims.
    #[error("malformed JWT: {0}")]
    Malformed(String),
    /// `alg` is not `RS256`.
    #[error("unsupported JWT algorithm {0:?}: only RS256 is accepted")]
    Algorithm(String),
    /// The signature does not verify with the service account's public key.
    #[error("Invalid JWT Signature.")]
    Signature,
    /// `iss` is not the configured service account.
    #[error("Invalid email or User ID: {0:?} is not this project's service account")]
    Issuer(String),
    /// `aud` is not the token endpoint.
    #[error("Invalid JWT: audience {0:?} is not the token endpoint")]
    Audience(String),
    /// The RBM scope was not asked for.
    #[error("Invalid OAuth scope: {0:?} does not include {RBM_SCOPE}")]
    Scope(String),
    /// `exp`/`iat` are not a current period of at most an hour.
    #[error(
        "Invalid JWT: Token must be a short-lived token (60 minutes) and in a reasonable timeframe. Check your iat ({iat}) and exp ({exp}) values in the JWT claim (server time {now})."
    )]
    Timeframe {
        /// The claimed `iat`.
        iat: i64,
        /// The claimed `exp`.
        exp: i64,
        /// The simulator's time.
        now: i64,
    },
}

impl From<AssertionError> for OAuthError {
    fn from(error: AssertionError) -> Self {
        match error {
            AssertionError::Malformed(_) | AssertionError::Algorithm(_) => {
                OAuthError::invalid_request(error.to_string())
            }
            _ => OAuthError::invalid_grant(error.to_string()),
        }
    }
}

/// Reads the service account's public key: SPKI (`BEGIN PUBLIC KEY`) or
/// PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
pub fn load_public_key(pem: &str) -> anyhow::Result<VerifyingKey<Sha256>> {
    use rsa::pkcs1::DecodeRsaPublicKey as _;
    use rsa::pkcs8::DecodePublicKey as _;
    let pem = pem.trim();
    let key = if pem.starts_with("-----BEGIN RSA PUBLIC KEY-----") {
        rsa::PublicKey::from_pkcs1_pem(pem)
            .map_err(|e| anyhow::anyhow!("not a PKCS#1 RSA public key: {e}"))?
    } else {
        rsa::PublicKey::from_public_key_pem(pem)
            .map_err(|e| anyhow::anyhow!("not an SPKI RSA public key: {e}"))?
    };
    Ok(VerifyingKey::new(key))
}

/// Verifies `assertion` as the token endpoint does, at `now` (Unix seconds).
pub fn verify_assertion(
    assertion: &str,
    key: &VerifyingKey<Sha256>,
    expected_issuer: &str,
    accepted_audiences: &[String],
    now: i64,
) -> Result<Claims, AssertionError> {
    let mut parts = assertion.trim().split('.');
    let (Some(header), Some(claims), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(AssertionError::Malformed(
            "expected three dot-separated parts".into(),
        ));
    };
    let decode = |part: &str, what: &str| {
        URL_SAFE_NO_PAD
            .decode(part)
            .map_err(|e| AssertionError::Malformed(format!("{what} is not base64url: {e}")))
    };
    let header: Header = serde_json::from_slice(&decode(header, "the header")?)
        .map_err(|e| AssertionError::Malformed(format!("header: {e}")))?;
    if header.alg != "RS256" {
        return Err(AssertionError::Algorithm(header.alg));
    }
    let signature_bytes = decode(signature, "the signature")?;
    let signature =
        Signature::try_from(signature_bytes.as_slice()).map_err(|_| AssertionError::Signature)?;
    let signed = assertion
        .trim()
        .rsplit_once('.')
        .map_or("", |(signed, _)| signed);
    key.verify(signed.as_bytes(), &signature)
        .map_err(|_| AssertionError::Signature)?;
    let claims: Claims = serde_json::from_slice(&decode(claims, "the claims")?)
        .map_err(|e| AssertionError::Malformed(format!("claims: {e}")))?;
    if claims.iss != expected_issuer {
        return Err(AssertionError::Issuer(claims.iss));
    }
    if !accepted_audiences.contains(&claims.aud) {
        return Err(AssertionError::Audience(claims.aud));
    }
    if !claims
        .scope
        .split_whitespace()
        .any(|scope| scope == RBM_SCOPE)
    {
        return Err(AssertionError::Scope(claims.scope));
    }
    if claims.exp <= now
        || claims.iat > now + CLOCK_SKEW_SECS
        || claims.exp <= claims.iat
        || claims.exp - claims.iat > MAX_ASSERTION_LIFETIME_SECS
    {
        return Err(AssertionError::Timeframe {
            iat: claims.iat,
            exp: claims.exp,
            now,
        });
    }
    Ok(claims)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rsa::pkcs8::DecodePrivateKey as _;
    use rsa::signature::{SignatureEncoding as _, Signer as _};

    const EMAIL: &str = super::super::DEFAULT_CLIENT_EMAIL;
    const AUD: &str = "http://127.0.0.1:9/token";
    const NOW: i64 = 1_800_000_000;

    /// A signed assertion with `claims`, by the test-only key `pem`.
    pub(crate) fn sign(pem: &str, header: &str, claims: &serde_json::Value) -> String {
        let key = rsa::PrivateKey::from_pkcs8_pem(pem).expect("test key");
        let signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(key);
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let signature = signer.try_sign(input.as_bytes()).expect("signs");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_vec()))
    }

    fn claims(iss: &str, aud: &str, scope: &str, iat: i64, exp: i64) -> serde_json::Value {
        serde_json::json!({"iss": iss, "scope": scope, "aud": aud, "iat": iat, "exp": exp})
    }

    const HEADER: &str = r#"{"alg":"RS256","typ":"JWT"}"#;

    fn verify(assertion: &str) -> Result<Claims, AssertionError> {
        let key = load_public_key(super::super::TEST_ONLY_PUBLIC_KEY_PEM).expect("public key");
        verify_assertion(assertion, &key, EMAIL, &[AUD.to_owned()], NOW)
    }

    #[test]
    fn accepts_a_good_assertion() {
        let jwt = sign(
            super::super::TEST_ONLY_PRIVATE_KEY_PEM,
            HEADER,
            &claims(EMAIL, AUD, RBM_SCOPE, NOW, NOW + 3_600),
        );
        let verified = verify(&jwt).expect("verifies");
        assert_eq!(verified.iss, EMAIL);
        assert_eq!(verified.exp, NOW + 3_600);
    }

    #[test]
    fn refuses_another_key_and_tampering() {
        let jwt = sign(
            super::super::TEST_ONLY_OTHER_PRIVATE_KEY_PEM,
            HEADER,
            &claims(EMAIL, AUD, RBM_SCOPE, NOW, NOW + 3_600),
        );
        assert_eq!(verify(&jwt), Err(AssertionError::Signature));
        let good = sign(
            super::super::TEST_ONLY_PRIVATE_KEY_PEM,
            HEADER,
            &claims(EMAIL, AUD, RBM_SCOPE, NOW, NOW + 3_600),
        );
        let forged_claims =
            URL_SAFE_NO_PAD.encode(claims("x@y.z", AUD, RBM_SCOPE, NOW, NOW + 3_600).to_string());
        let parts: Vec<&str> = good.split('.').collect();
        let tampered = format!("{}.{forged_claims}.{}", parts[0], parts[2]);
        assert_eq!(verify(&tampered), Err(AssertionError::Signature));
        assert!(matches!(verify("a.b"), Err(AssertionError::Malformed(_))));
        assert!(matches!(
            verify("a.b.c.d"),
            Err(AssertionError::Malformed(_))
        ));
        let none = sign(
            super::super::TEST_ONLY_PRIVATE_KEY_PEM,
            r#"{"alg":"none"}"#,
            &claims(EMAIL, AUD, RBM_SCOPE, NOW, NOW + 3_600),
        );
        assert_eq!(verify(&none), Err(AssertionError::Algorithm("none".into())));
    }

    #[test]
    fn checks_issuer_audience_scope_and_time() {
        let key = super::super::TEST_ONLY_PRIVATE_KEY_PEM;
        let cases = [
            (
                claims(
                    "other@x.iam.gserviceaccount.com",
                    AUD,
                    RBM_SCOPE,
                    NOW,
                    NOW + 60,
                ),
                "Invalid email",
            ),
            (
                claims(EMAIL, "https://example.com/token", RBM_SCOPE, NOW, NOW + 60),
                "audience",
            ),
            (
                claims(
                    EMAIL,
                    AUD,
                    "https://www.googleapis.com/auth/cloud-platform",
                    NOW,
                    NOW + 60,
                ),
                "scope",
            ),
            (
                claims(EMAIL, AUD, RBM_SCOPE, NOW - 7_200, NOW - 3_600),
                "short-lived",
            ),
            (
                claims(EMAIL, AUD, RBM_SCOPE, NOW, NOW + 7_200),
                "short-lived",
            ),
            (
                claims(EMAIL, AUD, RBM_SCOPE, NOW + 600, NOW + 1_200),
                "short-lived",
            ),
        ];
        for (claims, expected) in cases {
            let error = verify(&sign(key, HEADER, &claims)).expect_err("refused");
            assert!(error.to_string().contains(expected), "{claims}: {error}");
            let oauth = OAuthError::from(error);
            assert_eq!(oauth.error, "invalid_grant");
        }
        // Several scopes, clock skew within five minutes.
        let scopes = format!("openid {RBM_SCOPE}");
        assert!(
            verify(&sign(
                key,
                HEADER,
                &claims(EMAIL, AUD, &scopes, NOW + 60, NOW + 3_660)
            ))
            .is_ok()
        );
    }

    #[test]
    fn loads_pem_public_keys_only() {
        assert!(load_public_key(super::super::TEST_ONLY_PUBLIC_KEY_PEM).is_ok());
        let Err(error) = load_public_key("nope") else {
            panic!("a non-PEM key was accepted");
        };
        assert!(
            error.to_string().contains("not an SPKI RSA public key"),
            "{error}"
        );
    }
}
