//! [`StoreHandle`]: the async face of the store. SQLite calls block (disk I/O, fsync, a
//! `busy_timeout` while another process holds the write lock), so they never run on the async
//! workers: one dedicated thread owns the [`Store`] and executes closures sent to it through a
//! bounded queue. A full queue makes callers wait (back-pressure) instead of growing memory.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use crate::{Store, StoreError};

/// Calls waiting for the store thread before callers are made to wait.
pub const DEFAULT_QUEUE: usize = 1024;

type Job = Box<dyn FnOnce(&Store) + Send>;

/// Cheap to clone; every clone feeds the same thread. The thread ends when the last clone is
/// dropped (after finishing the calls already queued).
#[derive(Clone)]
pub struct StoreHandle {
    tx: mpsc::Sender<Job>,
    path: Option<Arc<PathBuf>>,
}

impl std::fmt::Debug for StoreHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreHandle")
            .field("path", &self.path)
            .finish()
    }
}

impl StoreHandle {
    /// Moves `store` onto its own thread, fed by a queue of `queue` calls (at least 1).
    pub fn spawn(store: Store, queue: usize) -> Result<StoreHandle, StoreError> {
        let path = store.path().map(|p| Arc::new(p.to_path_buf()));
        let (tx, mut rx) = mpsc::channel::<Job>(queue.max(1));
        std::thread::Builder::new()
            .name("store".into())
            .spawn(move || {
                while let Some(job) = rx.blocking_recv() {
                    // A panicking call drops its reply sender (its caller gets an error); the
                    // connection survives it (an unfinished transaction rolls back on drop).
                    let _ = catch_unwind(AssertUnwindSafe(|| job(&store)));
                }
            })?;
        Ok(StoreHandle { tx, path })
    }

    /// The file the store was opened from (`None` when in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref().map(PathBuf::as_path)
    }

    /// Runs `f` on the store thread and returns its result. Waits while the queue is full.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        F: FnOnce(&Store) -> Result<R, StoreError> + Send + 'static,
        R: Send + 'static,
    {
        let (reply, rx) = oneshot::channel();
        let job: Job = Box::new(move |s: &Store| {
            let _ = reply.send(f(s));
        });
        self.tx
            .send(job)
            .await
            .map_err(|_| StoreError::Unavailable("the store thread has stopped".into()))?;
        rx.await.map_err(|_| {
            StoreError::Unavailable("the store call failed (panicked on the store thread)".into())
        })?
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "current_thread")]
    async fn calls_run_off_the_caller_thread_and_return_results() {
        let h = StoreHandle::spawn(Store::open_in_memory().unwrap(), 4).unwrap();
        let caller = std::thread::current().id();
        let (tid, row) = h
            .call(|s| {
                let row = s.ensure_session("agent:main:main", "main", 1)?;
                Ok((std::thread::current().id(), row))
            })
            .await
            .unwrap();
        assert_ne!(tid, caller);
        assert_eq!(row.key, "agent:main:main");
        let err = h
            .call(|s| {
                s.get_run("nope")
                    .and_then(|r| r.ok_or(StoreError::NotFound("x".into())))
            })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::NotFound(_)));
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_panicking_call_is_an_error_and_the_thread_survives() {
        let h = StoreHandle::spawn(Store::open_in_memory().unwrap(), 4).unwrap();
        let err = h
            .call(|_| -> Result<(), StoreError> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Unavailable(_)), "{err}");
        assert!(h.call(|s| s.get_session("k")).await.unwrap().is_none());
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_full_queue_makes_callers_wait() {
        let h = StoreHandle::spawn(Store::open_in_memory().unwrap(), 1).unwrap();
        let (release_tx, release_rx) = std::sync::mpsc::channel::<()>();
        let (started_tx, started_rx) = std::sync::mpsc::channel::<()>();
        // Occupies the thread until released.
        let busy = tokio::spawn({
            let h = h.clone();
            async move {
                h.call(move |_| {
                    let _ = started_tx.send(());
                    let _ = release_rx.recv();
                    Ok(())
                })
                .await
            }
        });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while started_rx.try_recv().is_err() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the job never started"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // One call fits in the queue; the next one has to wait for room.
        let queued = tokio::spawn({
            let h = h.clone();
            async move { h.call(|_| Ok(1)).await }
        });
        while h.tx.capacity() != 0 {
            assert!(tokio::time::Instant::now() < deadline);
            tokio::task::yield_now().await;
        }
        let mut third = Box::pin(h.call(|_| Ok(2)));
        let polled = tokio::time::timeout(Duration::from_millis(50), &mut third).await;
        assert!(polled.is_err(), "the third call must wait for room");
        release_tx.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert_eq!(queued.await.unwrap().unwrap(), 1);
        assert_eq!(third.await.unwrap(), 2);
    }
}
