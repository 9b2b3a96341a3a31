//! Token format: `<prefix>_<type>_<secret><checksum>`.
//!
//! The secret is 43 base62 characters (more than 256 bits) drawn from the operating system's
//! random number generator; the checksum is the CRC32 of everything before it, written as 6
//! base62 characters, so that a mistyped or truncated token is refused without any lookup and
//! secret scanners can recognise a token by its prefix alone.
//!
//! Stores never keep a token: they keep its [`TokenDigest`] (SHA-256), a public [`TokenId`] and a
//! display stub. The types that hold a secret ([`Token`], [`Credential`](crate::Credential)) redact
//! it in `Debug` and `Display`.
//!
//! # Example
//!
//! ```
//! use m2m_core::{TokenFormat, TokenKind};
//!
//! let format = TokenFormat::default();
//! let token = format.generate(TokenKind::AccessToken);
//! assert!(token.expose_secret().starts_with("m2m_at_"));
//! assert_eq!(format!("{token:?}"), "Token(m2m_at_…)");
//!
//! let parsed = format.parse(token.expose_secret()).unwrap();
//! assert_eq!(parsed.kind(), TokenKind::AccessToken);
//! assert_eq!(parsed.digest(), token.digest());
//! ```

use std::fmt;
use std::hash::{BuildHasher, Hasher};

use sha2::{Digest as _, Sha256};

use crate::policy::TokenType;

const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Length of the random part of a token, in base62 characters (43 × log2(62) > 256 bits).
pub const SECRET_LEN: usize = 43;
/// Length of the checksum that ends a token, in base62 characters.
pub const CHECKSUM_LEN: usize = 6;
/// Length of the random part of a public token id, in base62 characters.
const ID_LEN: usize = 20;
/// Number of secret characters shown in a display stub.
const STUB_LEN: usize = 4;
/// The prefix of tokens when a deployment does not choose its own.
pub const DEFAULT_PREFIX: &str = "m2m";
/// The longest prefix a deployment may choose.
pub const MAX_PREFIX_LEN: usize = 16;

/// What a token is for; written as a two-letter code after the prefix.
///
/// Its serde names (`access_token`, `bearer_token`, `client_id`, `client_secret`) are the ones
/// used on the wire, e.g. as `kind` in an introspection answer.
///
/// ```
/// use m2m_core::TokenKind;
/// assert_eq!(serde_json::to_string(&TokenKind::BearerToken).unwrap(), "\"bearer_token\"");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    /// A long-lived access token sent in `X-API-KEY` (`at`).
    AccessToken,
    /// A short-lived bearer token obtained with client credentials, sent as
    /// `Authorization: Bearer` (`cc`).
    BearerToken,
    /// The public half of a client credential (`ci`).
    ClientId,
    /// The secret half of a client credential (`cs`).
    ClientSecret,
}

impl TokenKind {
    /// Every kind, in code order.
    pub const ALL: [TokenKind; 4] = [
        TokenKind::AccessToken,
        TokenKind::BearerToken,
        TokenKind::ClientId,
        TokenKind::ClientSecret,
    ];

    /// The two-letter code written in the token.
    ///
    /// ```
    /// assert_eq!(m2m_core::TokenKind::BearerToken.code(), "cc");
    /// ```
    pub const fn code(self) -> &'static str {
        self.code_name().0
    }

    /// The kind's one name in JSON, logs, the CLI and the admin page (its serde name).
    ///
    /// ```
    /// assert_eq!(m2m_core::TokenKind::ClientSecret.name(), "client_secret");
    /// ```
    pub const fn name(self) -> &'static str {
        self.code_name().1
    }

    const fn code_name(self) -> (&'static str, &'static str) {
        match self {
            TokenKind::AccessToken => ("at", "access_token"),
            TokenKind::BearerToken => ("cc", "bearer_token"),
            TokenKind::ClientId => ("ci", "client_id"),
            TokenKind::ClientSecret => ("cs", "client_secret"),
        }
    }

    /// The kind a two-letter code stands for.
    ///
    /// ```
    /// use m2m_core::TokenKind;
    /// assert_eq!(TokenKind::from_code("at"), Some(TokenKind::AccessToken));
    /// assert_eq!(TokenKind::from_code("xx"), None);
    /// ```
    pub fn from_code(code: &str) -> Option<Self> {
        Self::from_code_bytes(code.as_bytes())
    }

    fn from_code_bytes(code: &[u8]) -> Option<Self> {
        match code {
            b"at" => Some(TokenKind::AccessToken),
            b"cc" => Some(TokenKind::BearerToken),
            b"ci" => Some(TokenKind::ClientId),
            b"cs" => Some(TokenKind::ClientSecret),
            _ => None,
        }
    }

    /// The token type (the policy-level choice) this kind belongs to.
    ///
    /// ```
    /// use m2m_core::{TokenKind, TokenType};
    /// assert_eq!(TokenKind::ClientSecret.token_type(), TokenType::ClientCredentials);
    /// ```
    pub const fn token_type(self) -> TokenType {
        match self {
            TokenKind::AccessToken => TokenType::AccessToken,
            _ => TokenType::ClientCredentials,
        }
    }
}

/// The prefix a prefix was refused for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a token prefix is 1 to 16 lowercase ASCII letters or digits")]
pub struct InvalidPrefix;

/// Why a presented string is not a well-formed token.
///
/// Deliberately carries no part of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MalformedToken {
    /// Wrong length, wrong prefix, unknown type code or a character outside base62.
    #[error("the token is not in the expected format")]
    Format,
    /// The checksum does not match the rest of the token.
    #[error("the token checksum does not match")]
    Checksum,
}

/// The token format of one deployment: its prefix.
///
/// ```
/// use m2m_core::{TokenFormat, TokenKind};
/// let format = TokenFormat::new("acme").unwrap();
/// assert!(format.generate(TokenKind::BearerToken).expose_secret().starts_with("acme_cc_"));
/// assert!(TokenFormat::new("Not_Valid").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenFormat {
    prefix: Box<str>,
}

impl Default for TokenFormat {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.into(),
        }
    }
}

impl TokenFormat {
    /// A format with the given prefix.
    ///
    /// # Errors
    ///
    /// [`InvalidPrefix`] unless the prefix is 1 to 16 lowercase ASCII letters or digits.
    pub fn new(prefix: &str) -> Result<Self, InvalidPrefix> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
        if valid {
            Ok(Self {
                prefix: prefix.into(),
            })
        } else {
            Err(InvalidPrefix)
        }
    }

    /// The prefix, without the underscore that follows it.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The length of every token of this format.
    pub fn token_len(&self) -> usize {
        self.prefix.len() + 4 + SECRET_LEN + CHECKSUM_LEN
    }

    /// A new token of the given kind, from the operating system's random number generator.
    ///
    /// # Panics
    ///
    /// If the operating system cannot provide random bytes: a token must never be made from
    /// anything weaker.
    pub fn generate(&self, kind: TokenKind) -> Token {
        let mut text = String::with_capacity(self.token_len());
        text.push_str(&self.prefix);
        text.push('_');
        text.push_str(kind.code());
        text.push('_');
        push_random_base62(&mut text, SECRET_LEN);
        let checksum = crc32fast::hash(text.as_bytes());
        push_checksum(&mut text, checksum);
        Token { kind, text }
    }

    /// Checks the shape and checksum of a presented token, without any allocation.
    ///
    /// # Errors
    ///
    /// [`MalformedToken::Format`] when the text is not `<prefix>_<type>_<secret><checksum>`,
    /// [`MalformedToken::Checksum`] when the checksum does not match.
    pub fn parse<'a>(&self, text: &'a str) -> Result<ParsedToken<'a>, MalformedToken> {
        let kind = self.kind_of(text.as_bytes())?;
        self.check(text.as_bytes())?;
        Ok(ParsedToken { kind, text })
    }

    /// The shape's cheap part: length, prefix, separators and type code; the kind the code
    /// names.
    pub(crate) fn kind_of(&self, bytes: &[u8]) -> Result<TokenKind, MalformedToken> {
        let p = self.prefix.len();
        if bytes.len() != self.token_len()
            // A byte loop: the prefix is a few bytes, shorter than a call to `memcmp`.
            || !bytes.iter().zip(self.prefix.bytes()).all(|(a, b)| *a == b)
            || bytes[p] != b'_'
            || bytes[p + 3] != b'_'
        {
            return Err(MalformedToken::Format);
        }
        TokenKind::from_code_bytes(&bytes[p + 1..p + 3]).ok_or(MalformedToken::Format)
    }

    /// The rest, for bytes [`kind_of`](Self::kind_of) accepted: base62 characters and the
    /// checksum.
    pub(crate) fn check(&self, bytes: &[u8]) -> Result<(), MalformedToken> {
        let body = &bytes[self.prefix.len() + 4..];
        // Branch-free over the whole body, so that it runs on vectors.
        if !body
            .iter()
            .fold(true, |valid, b| valid & b.is_ascii_alphanumeric())
        {
            return Err(MalformedToken::Format);
        }
        let split = bytes.len() - CHECKSUM_LEN;
        let expected = decode_checksum(&bytes[split..]).ok_or(MalformedToken::Checksum)?;
        if crc32fast::hash(&bytes[..split]) != expected {
            return Err(MalformedToken::Checksum);
        }
        Ok(())
    }
}

pub(crate) fn push_random_base62(out: &mut String, count: usize) {
    // Rejection sampling: bytes below 248 (= 4 × 62) map uniformly onto the alphabet.
    let mut buf = [0u8; 64];
    let mut produced = 0;
    while produced < count {
        getrandom::fill(&mut buf)
            .expect("the operating system's random number generator is unavailable");
        for &b in &buf {
            if produced == count {
                break;
            }
            if b < 248 {
                out.push(BASE62[usize::from(b % 62)] as char);
                produced += 1;
            }
        }
    }
}

fn push_checksum(out: &mut String, mut value: u32) {
    let mut digits = [b'0'; CHECKSUM_LEN];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(value % 62) as usize];
        value /= 62;
    }
    out.extend(digits.iter().map(|&b| b as char));
}

/// Marks a byte outside the base62 alphabet in [`BASE62_VALUES`].
const INVALID: u8 = 0x80;

/// The value of each base62 character, [`INVALID`] for every other byte.
const BASE62_VALUES: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < BASE62.len() {
        table[BASE62[i] as usize] = i as u8;
        i += 1;
    }
    table
};

fn base62_value(b: u8) -> Option<u64> {
    let value = BASE62_VALUES[usize::from(b)];
    (value != INVALID).then_some(u64::from(value))
}

fn decode_checksum(digits: &[u8]) -> Option<u32> {
    let mut value: u64 = 0;
    for &b in digits {
        value = value * 62 + base62_value(b)?;
    }
    u32::try_from(value).ok()
}

/// A token in full: the secret itself. Shown once when issued, never stored.
///
/// `Debug` and `Display` print only the prefix and type, `expose_secret` gives the text.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    kind: TokenKind,
    text: String,
}

impl Token {
    /// The full token text, to hand to its owner once.
    pub fn expose_secret(&self) -> &str {
        &self.text
    }

    /// What the token is for.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The SHA-256 digest under which stores keep the token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(&self.text)
    }

    /// The display stub: prefix, type and the first four secret characters.
    pub fn stub(&self) -> String {
        stub_of(&self.text)
    }

    fn redacted_prefix(&self) -> &str {
        let end = self.text.len() - SECRET_LEN - CHECKSUM_LEN;
        &self.text[..end]
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({}…)", self.redacted_prefix())
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}…", self.redacted_prefix())
    }
}

/// A presented token whose format and checksum hold; borrowed from the request.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParsedToken<'a> {
    kind: TokenKind,
    text: &'a str,
}

impl<'a> ParsedToken<'a> {
    /// What the token is for, as its type code says.
    pub fn kind(&self) -> TokenKind {
        self.kind
    }

    /// The SHA-256 digest of the token.
    pub fn digest(&self) -> TokenDigest {
        TokenDigest::of(self.text)
    }

    /// The display stub of the token.
    pub fn stub(&self) -> String {
        stub_of(self.text)
    }

    /// The full token text.
    pub fn expose_secret(&self) -> &'a str {
        self.text
    }
}

impl fmt::Debug for ParsedToken<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ParsedToken")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

fn stub_of(text: &str) -> String {
    let start = text.len() - SECRET_LEN - CHECKSUM_LEN;
    format!("{}…", &text[..start + STUB_LEN])
}

/// The SHA-256 digest of a token: the only form in which a token is stored or cached.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenDigest([u8; 32]);

impl TokenDigest {
    /// The digest of a token's text.
    ///
    /// ```
    /// let digest = m2m_core::TokenDigest::of("abc");
    /// assert!(digest.to_hex().starts_with("ba7816bf"));
    /// ```
    pub fn of(token: &str) -> Self {
        Self(Sha256::digest(token.as_bytes()).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A digest from its raw bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Lowercase hexadecimal, 64 characters.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }

    /// Parses 64 hexadecimal characters.
    ///
    /// ```
    /// let digest = m2m_core::TokenDigest::of("abc");
    /// assert_eq!(m2m_core::TokenDigest::from_hex(&digest.to_hex()), Some(digest));
    /// assert_eq!(m2m_core::TokenDigest::from_hex("zz"), None);
    /// ```
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bytes = hex.as_bytes();
        if bytes.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (slot, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
            let hi = (pair[0] as char).to_digit(16)?;
            let lo = (pair[1] as char).to_digit(16)?;
            *slot = u8::try_from(hi * 16 + lo).ok()?;
        }
        Some(Self(out))
    }
}

impl fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenDigest({})", &self.to_hex()[..12])
    }
}

/// Hashes a [`TokenDigest`] by its first eight bytes: a SHA-256 output needs no further mixing.
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestHasher;

impl BuildHasher for DigestHasher {
    type Hasher = DigestHash;

    fn build_hasher(&self) -> DigestHash {
        DigestHash(0)
    }
}

/// The hasher built by [`DigestHasher`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DigestHash(u64);

impl Hasher for DigestHash {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 32]` hashes as its bytes; fold any other input so the hasher stays correct.
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.0 = self.0.rotate_left(5) ^ u64::from_le_bytes(word);
        }
    }
}

/// The public id of a token: safe to show, log and put in URLs.
///
/// ```
/// let id = m2m_core::TokenId::generate();
/// assert!(id.as_str().starts_with("tok_"));
/// ```
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(transparent)]
pub struct TokenId(Box<str>);

impl TokenId {
    /// A new random id.
    pub fn generate() -> Self {
        let mut text = String::with_capacity(4 + ID_LEN);
        text.push_str("tok_");
        push_random_base62(&mut text, ID_LEN);
        Self(text.into())
    }

    /// An id read back from storage.
    pub fn new(id: impl Into<Box<str>>) -> Self {
        Self(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TokenId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kind_has_one_name_in_code_and_in_json() {
        for kind in TokenKind::ALL {
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.name()));
            assert_eq!(TokenKind::from_code(kind.code()), Some(kind));
        }
    }
    use proptest::prelude::*;

    #[test]
    fn generated_tokens_have_the_documented_shape() {
        let format = TokenFormat::default();
        for kind in TokenKind::ALL {
            let token = format.generate(kind);
            let text = token.expose_secret();
            assert_eq!(text.len(), format.token_len());
            assert!(text.starts_with(&format!("m2m_{}_", kind.code())));
            assert_eq!(format.parse(text).unwrap().kind(), kind);
        }
    }

    #[test]
    fn secrets_differ() {
        let format = TokenFormat::default();
        let a = format.generate(TokenKind::AccessToken);
        let b = format.generate(TokenKind::AccessToken);
        assert_ne!(a.expose_secret(), b.expose_secret());
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn debug_display_and_stub_never_show_the_secret() {
        let token = TokenFormat::default().generate(TokenKind::BearerToken);
        let secret = &token.expose_secret()[7..];
        for shown in [format!("{token:?}"), format!("{token}"), token.stub()] {
            assert!(!shown.contains(&secret[..8]), "{shown}");
        }
        assert_eq!(token.stub().chars().count(), "m2m_cc_".len() + 4 + 1);
        assert!(token.stub().starts_with(&token.expose_secret()[..11]));
    }

    #[test]
    fn wrong_prefix_and_unknown_code_are_format_errors() {
        let format = TokenFormat::default();
        let token = format.generate(TokenKind::AccessToken);
        let other = TokenFormat::new("acme").unwrap();
        assert_eq!(
            other.parse(token.expose_secret()),
            Err(MalformedToken::Format)
        );
        let bad_code = token.expose_secret().replacen("_at_", "_zz_", 1);
        assert_eq!(format.parse(&bad_code), Err(MalformedToken::Format));
        assert_eq!(format.parse(""), Err(MalformedToken::Format));
    }

    #[test]
    fn checksum_is_six_base62_characters_of_crc32() {
        let mut s = String::new();
        push_checksum(&mut s, u32::MAX);
        assert_eq!(s.len(), 6);
        assert_eq!(decode_checksum(s.as_bytes()), Some(u32::MAX));
        let mut zero = String::new();
        push_checksum(&mut zero, 0);
        assert_eq!(zero, "000000");
    }

    #[test]
    fn digest_hex_round_trips_and_matches_sha256() {
        // SHA-256("abc") from FIPS 180-2.
        let digest = TokenDigest::of("abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(TokenDigest::from_hex(&digest.to_hex()), Some(digest));
    }

    fn kind_strategy() -> impl Strategy<Value = TokenKind> {
        prop::sample::select(TokenKind::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn every_generated_token_parses_and_checks(kind in kind_strategy(), prefix in "[a-z0-9]{1,16}") {
            let format = TokenFormat::new(&prefix).unwrap();
            let token = format.generate(kind);
            let parsed = format.parse(token.expose_secret()).unwrap();
            prop_assert_eq!(parsed.kind(), kind);
            prop_assert_eq!(parsed.digest(), token.digest());
        }

        #[test]
        fn any_single_character_change_fails(kind in kind_strategy(), pos in 0usize..56, replacement in prop::sample::select(BASE62.to_vec())) {
            let format = TokenFormat::default();
            let token = format.generate(kind);
            let mut bytes = token.expose_secret().as_bytes().to_vec();
            let pos = pos % bytes.len();
            prop_assume!(bytes[pos] != replacement);
            bytes[pos] = replacement;
            let changed = String::from_utf8(bytes).unwrap();
            prop_assert!(format.parse(&changed).is_err());
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,80}") {
            let _ = TokenFormat::default().parse(&text);
        }
    }
}
