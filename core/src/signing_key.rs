//! The keys a token service signs JWT access tokens with, as a store keeps them.

use std::fmt;

use time::OffsetDateTime;

/// One signing key: its `kid`, algorithm, private key (PKCS#8 DER) and public JWK.
///
/// The newest key that is not retired signs; a retired key stays published (its public JWK in
/// the JWKS) until every token it signed has expired. `Debug` never shows the private key.
///
/// ```
/// use m2m_core::SigningKey;
/// let key = SigningKey {
///     kid: "k1".into(),
///     algorithm: "EdDSA".into(),
///     private_key: vec![1, 2, 3],
///     public_jwk: r#"{"kty":"OKP"}"#.into(),
///     created_at: time::OffsetDateTime::UNIX_EPOCH,
///     retired_at: None,
/// };
/// assert!(!format!("{key:?}").contains("[1, 2, 3]"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    /// The key id, as JWT headers and the JWKS name it.
    pub kid: String,
    /// The JWS algorithm (`EdDSA`, `ES256`).
    pub algorithm: String,
    /// The private key, PKCS#8 DER.
    pub private_key: Vec<u8>,
    /// The public key as a JWK, JSON.
    pub public_jwk: String,
    /// When it was made.
    pub created_at: OffsetDateTime,
    /// When a newer key took over signing, if one did.
    pub retired_at: Option<OffsetDateTime>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}
