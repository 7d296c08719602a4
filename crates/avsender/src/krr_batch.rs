//! KRR lookups of concurrent send workers gathered into one request (up to KRR's 1000 persons,
//! waiting at most a few milliseconds for company): at national volume one request per
//! letter would be thousands of requests a second against a rate-limited register.
//!
//! A batch KRR refuses as a whole (one identifier it will not take) is asked again person by
//! person, so one bad identifier fails only its own letter.

use std::collections::HashMap;
use std::time::Duration;

use clients::krr::{KrrClient, Person};
use tokio::sync::{mpsc, oneshot};

/// Why a lookup gave no answer.
#[derive(Debug, Clone)]
pub enum LookupError {
    /// KRR refused this person (4xx other than 401/429): do not retry.
    Refused { status: u16, error: String },
    /// KRR unreachable, overloaded, or answered unexpectedly: retry later.
    Unavailable(String),
}

type Waiter = (String, oneshot::Sender<Result<Person, LookupError>>);

/// The sending side; cheap to clone.
#[derive(Clone)]
pub struct KrrBatcher {
    tx: mpsc::Sender<Waiter>,
}

/// The receiving side, run by [`run`].
pub struct BatchQueue {
    rx: mpsc::Receiver<Waiter>,
}

pub fn channel() -> (KrrBatcher, BatchQueue) {
    let (tx, rx) = mpsc::channel(4096);
    (KrrBatcher { tx }, BatchQueue { rx })
}

impl KrrBatcher {
    pub async fn lookup(&self, pid: &str) -> Result<Person, LookupError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send((pid.to_owned(), tx))
            .await
            .map_err(|_| LookupError::Unavailable("the KRR batcher is not running".into()))?;
        rx.await
            .map_err(|_| LookupError::Unavailable("the KRR batcher stopped".into()))?
    }
}

fn classify(e: clients::ClientError) -> LookupError {
    match e {
        clients::ClientError::Refused { status, error, .. }
            if (400..500).contains(&status) && status != 401 && status != 429 =>
        {
            LookupError::Refused { status, error }
        }
        other => LookupError::Unavailable(other.to_string()),
    }
}

/// Serves lookups until `shutdown` flips or every [`KrrBatcher`] is dropped.
pub async fn run(
    mut q: BatchQueue,
    krr: KrrClient,
    max_wait: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let max_batch = clients::krr::MAX_BATCH;
    loop {
        let first = tokio::select! {
            w = q.rx.recv() => w,
            _ = shutdown.wait_for(|s| *s) => None,
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + max_wait;
        while batch.len() < max_batch {
            match tokio::time::timeout_at(until, q.rx.recv()).await {
                Ok(Some(w)) => batch.push(w),
                Ok(None) | Err(_) => break,
            }
        }
        let mut ids: Vec<String> = batch.iter().map(|(p, _)| p.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let answers: HashMap<String, Result<Person, LookupError>> = match krr.lookup(&ids).await {
            Ok(persons) => persons
                .into_iter()
                .map(|p| (p.personidentifikator.clone(), Ok(p)))
                .collect(),
            Err(e) => match classify(e) {
                LookupError::Refused { .. } if ids.len() > 1 => {
                    let mut out = HashMap::new();
                    for id in &ids {
                        let r = match krr.lookup(std::slice::from_ref(id)).await {
                            Ok(mut p) if p.len() == 1 => p.pop().ok_or_else(|| {
                                LookupError::Unavailable("KRR answered without the person".into())
                            }),
                            Ok(_) => Err(LookupError::Unavailable(
                                "KRR answered without the person".into(),
                            )),
                            Err(e) => Err(classify(e)),
                        };
                        out.insert(id.clone(), r);
                    }
                    out
                }
                err => ids
                    .iter()
                    .map(|id| (id.clone(), Err(err.clone())))
                    .collect(),
            },
        };
        for (pid, reply) in batch {
            let r = answers.get(&pid).cloned().unwrap_or_else(|| {
                Err(LookupError::Unavailable(
                    "KRR answered without the person".into(),
                ))
            });
            let _ = reply.send(r);
        }
    }
}
