//! The verifier's usage task: hands the uses its cache noted to the lookup's
//! [`record_usage`](TokenLookup::record_usage), in batches, in the background.
//!
//! Verification only notes a use in memory (at most once a second per token), so the hot path
//! never waits for the store. A task spawned on the Tokio runtime the verifier was built in
//! drains the notes every interval and records them in one call. It holds the cache and the
//! lookup only weakly, so it never keeps a dropped verifier alive; when the last verifier clone
//! goes, the uses noted since the last batch are handed to the task, which records them and
//! ends. Failures are logged (`tracing`, warn) and the batch is dropped: `last_used_at` is a
//! hint, not an audit trail. The same task hands the verifier's counts to the `metrics`
//! recorder every interval ([`metrics`](crate::metrics)).

use std::sync::{Arc, Weak};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::oneshot;

use crate::cache::Cache;
use crate::metrics::VerifierMetrics;
use crate::store::{StoreError, TokenLookup};
use crate::token::TokenId;

/// How often a verifier records the uses it noted, unless configured.
pub const DEFAULT_USAGE_INTERVAL: Duration = Duration::from_secs(5);

/// The uses noted since the last batch, each token's latest.
pub(crate) fn drain(cache: &Cache) -> Vec<(TokenId, OffsetDateTime)> {
    cache
        .drain_usage()
        .into_iter()
        .map(|(id, at)| (id, crate::expiry::from_nanos(at)))
        .collect()
}

/// Records `uses` through `store`; returns how many there were.
pub(crate) async fn record(
    store: &dyn TokenLookup,
    uses: Vec<(TokenId, OffsetDateTime)>,
) -> Result<usize, StoreError> {
    if uses.is_empty() {
        return Ok(0);
    }
    let started = std::time::Instant::now();
    let recorded = store.record_usage(&uses).await;
    crate::metrics::store_call(
        crate::metrics::StoreCall::RecordUsage(recorded.is_ok()),
        started.elapsed(),
    );
    match recorded {
        Ok(()) => Ok(uses.len()),
        Err(error) => {
            tracing::warn!(
                tokens = uses.len(),
                %error,
                "recording token usage failed; this batch is dropped"
            );
            Err(error)
        }
    }
}

/// What the last verifier clone leaves to the task: the uses noted since the last batch.
struct Farewell {
    uses: Vec<(TokenId, OffsetDateTime)>,
    store: Arc<dyn TokenLookup>,
}

/// The verifier's handle on its usage task; dropped with the verifier's state, it hands the
/// remaining uses to the task.
pub(crate) struct UsageTask {
    cache: Arc<Cache>,
    store: Arc<dyn TokenLookup>,
    farewell: Option<oneshot::Sender<Farewell>>,
}

impl UsageTask {
    /// Spawns the task on the current Tokio runtime; `None` outside one (the uses are then only
    /// drained by hand).
    pub(crate) fn spawn(
        cache: &Arc<Cache>,
        store: &Arc<dyn TokenLookup>,
        metrics: &Arc<VerifierMetrics>,
        interval: Duration,
    ) -> Option<Self> {
        let runtime = tokio::runtime::Handle::try_current().ok()?;
        let (sender, receiver) = oneshot::channel();
        runtime.spawn(run(
            Arc::downgrade(cache),
            Arc::downgrade(store),
            Arc::downgrade(metrics),
            interval.max(Duration::from_millis(1)),
            receiver,
        ));
        Some(Self {
            cache: Arc::clone(cache),
            store: Arc::clone(store),
            farewell: Some(sender),
        })
    }
}

impl Drop for UsageTask {
    fn drop(&mut self) {
        if let Some(sender) = self.farewell.take() {
            let uses = drain(&self.cache);
            if !uses.is_empty() {
                // The task may be gone with its runtime; then so are these uses.
                let _ = sender.send(Farewell {
                    uses,
                    store: Arc::clone(&self.store),
                });
            }
        }
    }
}

async fn run(
    cache: Weak<Cache>,
    store: Weak<dyn TokenLookup>,
    metrics: Weak<VerifierMetrics>,
    interval: Duration,
    mut farewell: oneshot::Receiver<Farewell>,
) {
    loop {
        match tokio::time::timeout(interval, &mut farewell).await {
            Err(_elapsed) => {
                let (Some(cache), Some(store)) = (cache.upgrade(), store.upgrade()) else {
                    return;
                };
                let uses = drain(&cache);
                drop(cache);
                if let Some(metrics) = metrics.upgrade() {
                    metrics.publish();
                }
                // Failures are logged in `record`; the next batch is tried all the same.
                let _ = record(&*store, uses).await;
            }
            Ok(Ok(last)) => {
                let _ = record(&*last.store, last.uses).await;
                return;
            }
            // The verifier is gone with nothing left to record.
            Ok(Err(_closed)) => return,
        }
    }
}
