//! The safe-mode vectors made by wechatpy (`tests/fixtures/make_vectors.py`),
//! for the unit tests.

use serde::Deserialize;

/// `tests/fixtures/vectors.json`.
#[derive(Debug, Deserialize)]
pub struct VectorSet {
    /// Generator and version.
    pub generator: String,
    /// The webhook Token.
    pub token: String,
    /// The EncodingAESKey.
    pub encoding_aes_key: String,
    /// The Official Account's AppID.
    pub app_id: String,
    /// A URL-verification handshake.
    pub handshake: Handshake,
    /// Encrypted pushes.
    pub vectors: Vec<Vector>,
}

/// `GET ?signature&timestamp&nonce&echostr`.
#[derive(Debug, Deserialize)]
pub struct Handshake {
    /// Query `timestamp`.
    pub timestamp: String,
    /// Query `nonce`.
    pub nonce: String,
    /// Query `echostr`.
    pub echostr: String,
    /// Query `signature`.
    pub signature: String,
}

/// One encrypted push.
#[derive(Debug, Deserialize)]
pub struct Vector {
    /// What it is.
    pub name: String,
    /// Query `timestamp`.
    pub timestamp: String,
    /// Query `nonce`.
    pub nonce: String,
    /// Query `openid`.
    pub openid: String,
    /// Query `signature`.
    pub signature: String,
    /// Query `msg_signature`.
    pub msg_signature: String,
    /// The 16 random bytes (ASCII) that start the plaintext frame.
    pub random: String,
    /// The AppID the message was encrypted for.
    pub encrypt_app_id: String,
    /// The `Encrypt` value.
    pub encrypt: String,
    /// The request body.
    pub body: String,
    /// The decrypted message XML.
    pub plaintext: String,
    /// What the adapter should make of it.
    pub expect: serde_json::Value,
}

impl VectorSet {
    /// The vector called `name`.
    pub fn vector(&self, name: &str) -> &Vector {
        self.vectors
            .iter()
            .find(|v| v.name == name)
            .unwrap_or_else(|| panic!("no vector {name}"))
    }
}

impl Vector {
    /// The query string WeChat would send with this push, in safe mode.
    pub fn query(&self) -> String {
        format!(
            "signature={}&timestamp={}&nonce={}&openid={}&encrypt_type=aes&msg_signature={}",
            self.signature, self.timestamp, self.nonce, self.openid, self.msg_signature
        )
    }
}

/// Load the vectors.
pub fn load() -> VectorSet {
    let set: VectorSet = serde_json::from_str(include_str!("../tests/fixtures/vectors.json"))
        .expect("tests/fixtures/vectors.json parses");
    assert!(set.generator.starts_with("wechatpy"), "{}", set.generator);
    set
}
