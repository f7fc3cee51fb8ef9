//! A bounded place for CPU-bound work (HTML parsing and extraction, feed rendering and
//! compression), because a slow parse on an async worker stalls every request and timer
//! sharing that worker: `/healthz`, feeds, even SIGTERM handling.
//!
//! [`run_cpu`] (the crawl's lane) and [`run_serve`] (the server's) run a closure on
//! tokio's blocking pool, each lane at most one closure per core at a time: callers
//! beyond that wait (asynchronously) for a permit, so the queue is the set of waiting
//! futures and the blocking pool never grows past the lanes' bound because of us. Two
//! lanes, so rendering a changed feed never queues behind a crawl of hostile pages.

use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// Why CPU work did not run to the end.
#[derive(Debug, thiserror::Error)]
pub enum CpuError {
    /// The runtime is shutting down and dropped the work before it finished.
    #[error("CPU work was cancelled (the runtime is shutting down)")]
    Cancelled,
}

fn per_core() -> Arc<Semaphore> {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Arc::new(Semaphore::new(cores))
}

/// One permit per core: more parallel parses than cores only adds latency to all of them.
static PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(per_core);
/// The server's lane (feed rendering and compression on a cache miss).
static SERVE_PERMITS: LazyLock<Arc<Semaphore>> = LazyLock::new(per_core);

/// [`run_cpu`] on the server's lane.
pub async fn run_serve<F, R>(f: F) -> Result<R, CpuError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    run_on(&SERVE_PERMITS, f).await
}

/// Runs `f` off the async workers, at most one call per core at once; waits for a free
/// core first. A panic in `f` is resumed in the caller, as if `f` had run inline, so a
/// caller's own panic supervision (the scheduler's per-site supervisor) sees it.
///
/// The permit travels with the closure: when the caller stops waiting (a run deadline),
/// the closure still holds its core until it returns, so the bound stays true.
pub async fn run_cpu<F, R>(f: F) -> Result<R, CpuError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    run_on(&PERMITS, f).await
}

async fn run_on<F, R>(lane: &Arc<Semaphore>, f: F) -> Result<R, CpuError>
where
    F: FnOnce() -> R + Send + 'static,
    R: Send + 'static,
{
    let permit = lane
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| CpuError::Cancelled)?;
    let joined = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        f()
    })
    .await;
    match joined {
        Ok(r) => Ok(r),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(CpuError::Cancelled),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_off_the_worker_and_resumes_panics() {
        let here = std::thread::current().id();
        let there = run_cpu(move || std::thread::current().id()).await.unwrap();
        assert_ne!(here, there);
        let caught =
            futures_util::FutureExt::catch_unwind(std::panic::AssertUnwindSafe(run_cpu(|| {
                panic!("boom")
            })))
            .await;
        assert!(caught.is_err());
        // The permit of the panicked call came back.
        assert_eq!(run_cpu(|| 7).await.unwrap(), 7);
    }
}
