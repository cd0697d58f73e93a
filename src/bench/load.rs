//! The load generator of `crm bench api`: K workers, each looping one operation for a fixed
//! time and timing every call, so that HTTP requests and raw-SQL transactions are driven and
//! measured the same way. The first failure stops the run: a benchmark of errors is no
//! benchmark.

use super::percentile;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Calls each worker makes before the clock starts (connections opened, caches and plans warm).
const WARMUP_PER_WORKER: usize = 10;

/// What one side of one operation achieved.
pub(crate) struct Measured {
    /// Calls completed inside the measured time.
    pub completed: usize,
    /// From the start to the end of the last call.
    pub elapsed: Duration,
    /// Every call's latency, sorted.
    latencies: Vec<Duration>,
}

impl Measured {
    /// Completed calls per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.completed as f64 / secs
        } else {
            0.0
        }
    }

    pub fn p50(&self) -> Duration {
        percentile(&self.latencies, 50.0)
    }

    pub fn p99(&self) -> Duration {
        percentile(&self.latencies, 99.0)
    }
}

/// Runs `op(worker, n)` in `workers` concurrent tasks, each calling it again and again, first
/// [`WARMUP_PER_WORKER`] times untimed, then for `duration`; `n` counts each worker's calls.
pub(crate) async fn drive<F, Fut>(
    workers: usize,
    duration: Duration,
    op: F,
) -> anyhow::Result<Measured>
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let op = Arc::new(op);
    let mut warmup = JoinSet::new();
    for worker in 0..workers {
        let op = Arc::clone(&op);
        warmup.spawn(async move {
            for n in 0..WARMUP_PER_WORKER {
                op(worker, n).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = warmup.join_next().await {
        done??;
    }

    let started = Instant::now();
    let deadline = started + duration;
    let mut timed = JoinSet::new();
    for worker in 0..workers {
        let op = Arc::clone(&op);
        timed.spawn(async move {
            let mut latencies = Vec::new();
            let mut n = WARMUP_PER_WORKER;
            while Instant::now() < deadline {
                let call = Instant::now();
                op(worker, n).await?;
                latencies.push(call.elapsed());
                n += 1;
            }
            anyhow::Ok(latencies)
        });
    }
    let mut latencies = Vec::new();
    // Dropping the set on an error aborts the other workers.
    while let Some(done) = timed.join_next().await {
        latencies.extend(done??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Ok(Measured {
        completed: latencies.len(),
        elapsed,
        latencies,
    })
}
