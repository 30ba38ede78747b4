//! Group commit: many concurrent callers' requests executed as one batch.
//!
//! Each caller hands in one request and waits for its own answer; a worker
//! takes every request waiting (up to `max_batch`) and runs them in one go,
//! typically one SQL statement. Under load the batches grow by themselves
//! (requests queue while a batch runs), so the cost per request falls as the
//! rate rises; idle, a request runs at once in a batch of one.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc, oneshot};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum BatchError<E> {
    /// Its batch failed; every request of the batch shares this error.
    #[error(transparent)]
    Failed(Arc<E>),
    /// The workers are gone (the runtime is shutting down).
    #[error("batch worker stopped")]
    Stopped,
}

impl<E> Clone for BatchError<E> {
    fn clone(&self) -> Self {
        match self {
            BatchError::Failed(e) => BatchError::Failed(e.clone()),
            BatchError::Stopped => BatchError::Stopped,
        }
    }
}

type Job<Req, Res, E> = (Req, oneshot::Sender<Result<Res, BatchError<E>>>);

/// A handle to submit requests; cheap to clone. `E` is the error a batch
/// can fail with.
pub struct Batcher<Req, Res, E> {
    tx: mpsc::Sender<Job<Req, Res, E>>,
}

impl<Req, Res, E> Clone for Batcher<Req, Res, E> {
    fn clone(&self) -> Self {
        Batcher {
            tx: self.tx.clone(),
        }
    }
}

impl<Req, Res, E> Batcher<Req, Res, E>
where
    Req: Send + 'static,
    Res: Send + 'static,
    E: std::error::Error + Send + Sync + 'static,
{
    /// Starts `workers` workers running `run` on batches of at most
    /// `max_batch`. `run` must return one answer per request, in order. The
    /// workers stop when every handle is dropped.
    pub fn spawn<F, Fut>(workers: usize, max_batch: usize, run: F) -> Self
    where
        F: Fn(Vec<Req>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Res>, E>> + Send,
    {
        let (tx, rx) = mpsc::channel::<Job<Req, Res, E>>(max_batch * workers.max(1) * 4);
        let rx = Arc::new(Mutex::new(rx));
        let run = Arc::new(run);
        for _ in 0..workers.max(1) {
            let rx = rx.clone();
            let run = run.clone();
            tokio::spawn(async move {
                let mut jobs: Vec<Job<Req, Res, E>> = Vec::with_capacity(max_batch);
                loop {
                    {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        jobs.push(first);
                        while jobs.len() < max_batch {
                            match rx.try_recv() {
                                Ok(job) => jobs.push(job),
                                Err(_) => break,
                            }
                        }
                    }
                    let (requests, replies): (Vec<Req>, Vec<_>) = jobs.drain(..).unzip();
                    let expected = requests.len();
                    match run(requests).await {
                        Ok(answers) => {
                            debug_assert_eq!(answers.len(), expected, "one answer per request");
                            for (reply, answer) in replies.into_iter().zip(answers) {
                                let _ = reply.send(Ok(answer));
                            }
                        }
                        Err(e) => {
                            let e = BatchError::Failed(Arc::new(e));
                            for reply in replies {
                                let _ = reply.send(Err(e.clone()));
                            }
                        }
                    }
                }
            });
        }
        Batcher { tx }
    }

    /// Submits one request and waits for its answer.
    pub async fn call(&self, request: Req) -> Result<Res, BatchError<E>> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((request, tx))
            .await
            .map_err(|_| BatchError::Stopped)?;
        rx.await.map_err(|_| BatchError::Stopped)?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_callers_and_batches_form_under_load() {
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let b: Batcher<u32, u32, std::io::Error> = Batcher::spawn(1, 64, move |reqs: Vec<u32>| {
            seen.lock().unwrap().push(reqs.len());
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
                Ok::<_, std::io::Error>(reqs.into_iter().map(|r| r * 2).collect())
            }
        });
        let answers = futures::future::join_all((0..200u32).map(|i| {
            let b = b.clone();
            async move { (i, b.call(i).await.unwrap()) }
        }))
        .await;
        for (i, a) in answers {
            assert_eq!(a, i * 2);
        }
        let sizes = sizes.lock().unwrap();
        assert!(sizes.iter().all(|s| *s <= 64));
        assert!(
            sizes.len() < 200,
            "requests were grouped: {} batches",
            sizes.len()
        );
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_of_its_requests() {
        let b: Batcher<u32, u32, std::io::Error> = Batcher::spawn(2, 8, |_reqs: Vec<u32>| async {
            Err::<Vec<u32>, _>(std::io::Error::other("db down"))
        });
        let err = b.call(1).await.unwrap_err();
        assert!(err.to_string().contains("db down"));
    }
}
