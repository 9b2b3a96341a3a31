//! [`PageCursor`]: where a keyset ("seek") page of a token listing starts.
//!
//! Token listings are ordered by creation time, ties broken by id byte by byte. A page that
//! starts after a cursor (the last record of the previous page) is read by seeking in that
//! order, so the store never reads the records before it, however many there are; a page
//! that starts at an offset reads and drops every record before it.

use std::fmt;
use std::str::FromStr;

use time::OffsetDateTime;

use crate::record::TokenRecord;
use crate::token::TokenId;

/// The longest text form of a cursor [`PageCursor::from_str`] accepts, in bytes.
pub const MAX_PAGE_CURSOR_LEN: usize = 160;

/// A position in a token listing (ordered by `created_at`, then `id`): a page that starts
/// after it holds the records that sort after this creation time and id.
///
/// Its text form, for URLs, is `<unix nanoseconds>.<token id>`; treat it as opaque. It parses
/// strictly: no sign but a leading `-`, no leading zeros, an id of ASCII letters, digits, `_`
/// and `-`, at most [`MAX_PAGE_CURSOR_LEN`] bytes in all.
///
/// ```
/// use m2m_core::{PageCursor, TokenId};
/// use time::OffsetDateTime;
///
/// let at = OffsetDateTime::from_unix_timestamp_nanos(1_700_000_000_123_456_789).unwrap();
/// let cursor = PageCursor::new(at, TokenId::new("tok_abc"));
/// assert_eq!(cursor.to_string(), "1700000000123456789.tok_abc");
/// assert_eq!("1700000000123456789.tok_abc".parse::<PageCursor>().unwrap(), cursor);
/// assert!("01.tok_abc".parse::<PageCursor>().is_err());
/// assert!("tok_abc".parse::<PageCursor>().is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageCursor {
    /// The creation time of the last record of the previous page.
    pub created_at: OffsetDateTime,
    /// The id of the last record of the previous page.
    pub id: TokenId,
}

/// A page cursor's text is not one [`PageCursor`]'s `Display` writes.
///
/// ```
/// let error = "nope".parse::<m2m_core::PageCursor>().unwrap_err();
/// assert!(error.to_string().contains("<unix nanoseconds>.<token id>"));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid page cursor: expected <unix nanoseconds>.<token id>, as a listing returns it")]
pub struct InvalidPageCursor;

impl PageCursor {
    /// The cursor at `created_at` and `id`.
    ///
    /// ```
    /// use m2m_core::{PageCursor, TokenId};
    ///
    /// let cursor = PageCursor::new(time::OffsetDateTime::UNIX_EPOCH, TokenId::new("tok_a"));
    /// assert_eq!(cursor.to_string(), "0.tok_a");
    /// ```
    pub fn new(created_at: OffsetDateTime, id: TokenId) -> Self {
        Self { created_at, id }
    }

    /// The cursor of `record`: the next page starts after it.
    ///
    /// ```
    /// use m2m_core::{Expiry, NewToken, PageCursor, TokenFormat, TokenKind};
    ///
    /// let now = time::OffsetDateTime::now_utc();
    /// let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never);
    /// let record = request.generate(&TokenFormat::default(), now).record;
    /// let cursor = PageCursor::of(&record);
    /// assert_eq!((cursor.created_at, &cursor.id), (record.created_at, &record.id));
    /// ```
    pub fn of(record: &TokenRecord) -> Self {
        Self::new(record.created_at, record.id.clone())
    }

    /// Whether `record` sorts after this cursor, in the order of the listings.
    ///
    /// ```
    /// use m2m_core::{Expiry, NewToken, PageCursor, TokenFormat, TokenKind};
    ///
    /// let now = time::OffsetDateTime::now_utc();
    /// let request = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never);
    /// let record = request.generate(&TokenFormat::default(), now).record;
    /// assert!(!PageCursor::of(&record).precedes(&record));
    /// let earlier = PageCursor::new(now - time::Duration::SECOND, record.id.clone());
    /// assert!(earlier.precedes(&record));
    /// ```
    pub fn precedes(&self, record: &TokenRecord) -> bool {
        (self.created_at, &self.id) < (record.created_at, &record.id)
    }

    /// The creation time as Unix nanoseconds, as the text form writes it.
    ///
    /// ```
    /// use m2m_core::{PageCursor, TokenId};
    ///
    /// let cursor = PageCursor::new(time::OffsetDateTime::UNIX_EPOCH, TokenId::new("tok_a"));
    /// assert_eq!(cursor.unix_nanos(), 0);
    /// ```
    pub fn unix_nanos(&self) -> i128 {
        self.created_at.unix_timestamp_nanos()
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.unix_nanos(), self.id)
    }
}

impl FromStr for PageCursor {
    type Err = InvalidPageCursor;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_PAGE_CURSOR_LEN {
            return Err(InvalidPageCursor);
        }
        let (nanos, id) = text.split_once('.').ok_or(InvalidPageCursor)?;
        let digits = nanos.strip_prefix('-').unwrap_or(nanos);
        let canonical = !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits == "0" || !digits.starts_with('0'))
            && nanos != "-0";
        let id_ok = !id.is_empty()
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !canonical || !id_ok {
            return Err(InvalidPageCursor);
        }
        let nanos: i128 = nanos.parse().map_err(|_| InvalidPageCursor)?;
        let created_at =
            OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| InvalidPageCursor)?;
        Ok(Self::new(created_at, TokenId::new(id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip() {
        for nanos in [0, 1, -1, 1_700_000_000_123_456_789, i128::from(i64::MAX)] {
            let at = OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
            let cursor = PageCursor::new(at, TokenId::generate());
            assert_eq!(cursor.to_string().parse::<PageCursor>(), Ok(cursor));
        }
    }

    #[test]
    fn only_the_written_form_parses() {
        let long_id = "a".repeat(MAX_PAGE_CURSOR_LEN);
        for bad in [
            "",
            ".",
            "1.",
            ".tok_a",
            "tok_a",
            "+1.tok_a",
            "-0.tok_a",
            "01.tok_a",
            "1 .tok_a",
            "1.tok a",
            "1.tok.a",
            "1.tok_ä",
            "1.tok_a%20",
            "0x1.tok_a",
            "1e3.tok_a",
            "99999999999999999999999999999999999.tok_a",
            "9223372036854775807000000.tok_a",
            &format!("1.{long_id}"),
        ] {
            assert_eq!(bad.parse::<PageCursor>(), Err(InvalidPageCursor), "{bad:?}");
        }
        assert!("-5.tok_a-B_9".parse::<PageCursor>().is_ok());
    }
}
