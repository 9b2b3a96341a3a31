//! What the revocation event stream counts, through the `metrics` facade (see
//! [`m2m_core::metrics`] for the verifier's own metrics and how an application exports them).
//!
//! | metric | type | what |
//! |---|---|---|
//! | `m2m_remote_revocation_stream_reconnects_total` | counter | attempts to open the stream again after it closed or an attempt failed |
//! | `m2m_remote_revocation_stream_gaps_total` | counter | `reset` events: the service could not replay what this follower may have missed, and every subscribed cache was dropped |
//! | `m2m_remote_revocation_events_total` | counter | revocation events received and handed to the caches |
//! | `m2m_remote_revocation_stream_connected` | gauge | open event streams of this process's remote stores (1 per store while its stream is open) |
//!
//! These are rare events, so they go to the recorder when they happen. No label names a
//! token, a tenant or the service's address.

/// Attempts to open the revocation stream again (counter).
pub const STREAM_RECONNECTS: &str = "m2m_remote_revocation_stream_reconnects_total";
/// Reset events: revocations may have been missed and the caches were dropped (counter).
pub const STREAM_GAPS: &str = "m2m_remote_revocation_stream_gaps_total";
/// Revocation events received (counter).
pub const REVOCATION_EVENTS: &str = "m2m_remote_revocation_events_total";
/// Open revocation streams (gauge).
pub const STREAM_CONNECTED: &str = "m2m_remote_revocation_stream_connected";

/// Describes the metrics of this module to the installed recorder: unit and help text.
pub fn describe() {
    use ::metrics::{Unit, describe_counter, describe_gauge};
    describe_counter!(
        STREAM_RECONNECTS,
        Unit::Count,
        "Attempts to reopen the revocation event stream after it closed or an attempt failed"
    );
    describe_counter!(
        STREAM_GAPS,
        Unit::Count,
        "Reset events: the token service could not replay missed revocations, caches were dropped"
    );
    describe_counter!(
        REVOCATION_EVENTS,
        Unit::Count,
        "Revocation events received from the token service"
    );
    describe_gauge!(
        STREAM_CONNECTED,
        Unit::Count,
        "Open revocation event streams of the remote stores in this process"
    );
}

/// Something the follower of the event stream counts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum StreamEvent {
    Reconnect,
    Gap,
    Revocation,
    Opened,
    Closed,
}

/// Hands `event` to the installed recorder.
pub(crate) fn count(event: StreamEvent) {
    describe();
    match event {
        StreamEvent::Reconnect => ::metrics::counter!(STREAM_RECONNECTS).increment(1),
        StreamEvent::Gap => ::metrics::counter!(STREAM_GAPS).increment(1),
        StreamEvent::Revocation => ::metrics::counter!(REVOCATION_EVENTS).increment(1),
        StreamEvent::Opened => ::metrics::gauge!(STREAM_CONNECTED).increment(1.0),
        StreamEvent::Closed => ::metrics::gauge!(STREAM_CONNECTED).decrement(1.0),
    }
}
