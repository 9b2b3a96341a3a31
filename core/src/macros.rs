//! Definitions the framework adapters share, written once: the option setters of a middleware
//! that holds an [`Admission`](crate::Admission), and the handler-facing caller type.

/// Generates, inside an `impl` block, the option setters of a middleware that holds an
/// [`Admission`](crate::Admission): `require_scopes`, `optional`, `cors_preflight` and
/// `strip_credentials`. `$admission` names a method of the type returning
/// `&mut Admission`.
///
/// Every adapter's middleware gets the same setters, with the same meaning and docs, from
/// this one definition.
///
/// ```
/// use m2m_core::{Admission, MemoryStore, Verifier};
///
/// /// A middleware of some framework.
/// struct Auth {
///     admission: Admission,
/// }
///
/// impl Auth {
///     fn admission_mut(&mut self) -> &mut Admission {
///         &mut self.admission
///     }
///
///     m2m_core::admission_options!(admission_mut);
/// }
///
/// let verifier = Verifier::builder(MemoryStore::new()).build();
/// let auth = Auth { admission: Admission::new(verifier) }
///     .require_scopes(["reports:read"])
///     .require_scopes(["reports:write"])
///     .optional(true);
/// assert_eq!(auth.admission.scopes().count(), 2);
/// assert!(auth.admission.is_optional());
/// ```
#[macro_export]
macro_rules! admission_options {
    ($admission:ident) => {
        /// Requires every scope in `scopes`, in addition to those required before, on every
        /// request; a valid token without one of them is refused with 403
        /// `insufficient_scope`.
        pub fn require_scopes<I>(mut self, scopes: I) -> Self
        where
            I: ::core::iter::IntoIterator,
            I::Item: ::core::convert::Into<::std::string::String>,
        {
            let admission = self.$admission();
            *admission = admission.clone().require_scopes(scopes);
            self
        }

        /// Whether a request with no credentials at all reaches the application without a
        /// caller (default: no); a bad, expired, misplaced or under-scoped token is refused
        /// either way.
        pub fn optional(mut self, optional: bool) -> Self {
            let admission = self.$admission();
            *admission = admission.clone().optional(optional);
            self
        }

        /// Whether a CORS preflight (`OPTIONS` with `Origin` and
        /// `Access-Control-Request-Method`) passes unverified (default: no). The usual way is
        /// a CORS middleware outside this one, which answers preflights before they reach it.
        pub fn cors_preflight(mut self, pass: bool) -> Self {
            let admission = self.$admission();
            *admission = admission.clone().cors_preflight(pass);
            self
        }

        /// Whether both credential headers, `X-API-KEY` and `Authorization`, are removed from
        /// an admitted request before the application sees it (default: no).
        pub fn strip_credentials(mut self, strip: bool) -> Self {
            let admission = self.$admission();
            *admission = admission.clone().strip_credentials(strip);
            self
        }
    };
}

/// Defines an adapter's handler-facing caller type: a newtype over
/// [`Principal`](crate::Principal) that dereferences to it, with `into_inner` and a
/// conversion back. The adapter then implements its framework's extractor trait for it.
///
/// ```
/// m2m_core::caller_type!(
///     /// The caller, as some framework's handlers take it.
///     Caller
/// );
///
/// use m2m_core::{Expiry, NewToken, TokenFormat, TokenKind};
/// let issued = NewToken::new(TokenKind::AccessToken, "acme", Expiry::Never)
///     .generate(&TokenFormat::default(), time::OffsetDateTime::now_utc());
/// let caller = Caller(issued.record.principal());
/// assert_eq!(caller.tenant(), "acme");
/// assert_eq!(m2m_core::Principal::from(caller).tenant(), "acme");
/// ```
#[macro_export]
macro_rules! caller_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name(pub $crate::Principal);

        impl $name {
            /// The caller.
            pub fn into_inner(self) -> $crate::Principal {
                self.0
            }
        }

        impl ::core::ops::Deref for $name {
            type Target = $crate::Principal;

            fn deref(&self) -> &$crate::Principal {
                &self.0
            }
        }

        impl ::core::convert::From<$name> for $crate::Principal {
            fn from(caller: $name) -> Self {
                caller.0
            }
        }
    };
}
