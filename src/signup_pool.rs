//! Keeps the warm sign-up pool (`crm_tenants::pool`) at `signup_pool_size` ready entries:
//! a task of each server upgrades entries left behind by a schema change, fills the pool up,
//! and reports how many are ready (`crm_signup_pool_available`). It runs at start, whenever a
//! claim commits (`NOTIFY crm_signup_pool`, heard on a connection of its own), and every
//! minute in case a notification was missed. Several servers may do it at once: the fill is
//! serialised in the database. Failures are logged and retried on the next round; they never
//! touch the server.

use crate::metrics::Metrics;
use crm_core::db::Db;
use crm_tenants::pool;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// The round run even when no claim was heard.
const TICK: Duration = Duration::from_secs(60);

/// Starts the refill task; abort the handle to stop it (an interrupted fill rolls back).
pub fn spawn(db: Db, target: usize, metrics: Arc<Metrics>) -> JoinHandle<()> {
    tokio::spawn(run(db, target, metrics))
}

async fn run(db: Db, target: usize, metrics: Arc<Metrics>) {
    let mut listener = None;
    loop {
        // Listening before each round's fill, so a claim committed meanwhile wakes the next.
        if listener.is_none() {
            match crm_core::db::listen(&db.pool, pool::REFILL_CHANNEL).await {
                Ok(l) => listener = Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "sign-up pool: cannot listen for claims; refilling every minute");
                }
            }
        }
        refill(&db, target, &metrics).await;
        let lost = match listener.as_mut() {
            Some(l) => tokio::select! {
                heard = l.recv() => heard.err(),
                () = tokio::time::sleep(TICK) => None,
            },
            None => {
                tokio::time::sleep(TICK).await;
                None
            }
        };
        if let Some(e) = lost {
            tracing::warn!(error = %e, "sign-up pool: claim listener lost its connection");
            listener = None;
        }
    }
}

/// One round: upgrade, fill, count.
async fn refill(db: &Db, target: usize, metrics: &Metrics) {
    match pool::upgrade(db).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(entries = n, "sign-up pool: entries upgraded"),
        Err(e) => tracing::warn!(error = %e, "sign-up pool: cannot upgrade entries"),
    }
    match pool::fill(db, target).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(entries = n, "sign-up pool: entries created"),
        Err(e) => tracing::warn!(error = %e, "sign-up pool: cannot create entries"),
    }
    match pool::available(&db.pool).await {
        Ok(n) => metrics.set_signup_pool_available(n),
        Err(e) => tracing::warn!(error = %e, "sign-up pool: cannot count entries"),
    }
}
