//! Job wake-ups on PostgreSQL: one `LISTEN` connection per [`Db`](crate::Db), shared by every
//! worker loop of the process. A listener per worker loop cost a server connection each (a
//! sender with 16 workers held 16 of them); now it is one per pool.
//!
//! Each announced job wakes **one** idle worker loop of its queue, not all of them: waking
//! every loop made each enqueue cost one claim per idle worker, and all but one found
//! nothing (26 claims per letter in the chain, where 4 jobs per letter run). A loop that is
//! busy claims again as soon as its job is done, so a job announced while every loop is busy
//! is still taken at once; a wake-up that finds nothing costs one empty claim.
//!
//! The listening task reconnects after errors and ends once no worker loop listens any more.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{Notify, watch};

use crate::sql::NOTIFY_CHANNEL;

/// Wakes one waiting worker loop of a queue per announced job.
pub(crate) type Wakeup = Arc<Notify>;

#[derive(Default)]
pub(crate) struct Wakeups {
    state: Arc<Mutex<State>>,
}

#[derive(Default)]
struct State {
    /// One waker per queue, shared by that queue's worker loops; dropped with the last loop.
    queues: HashMap<String, Weak<Notify>>,
    task: Option<Running>,
}

struct Running {
    /// `true` while the `LISTEN` is in place.
    listening: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// How often the listening task checks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(5);

/// How long a new subscriber waits for the `LISTEN` to be in place.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

impl Wakeups {
    /// The waker of `queue`'s worker loops; starts the listening task when none runs, and
    /// waits (briefly) until the `LISTEN` is in place, so that a job enqueued after this
    /// returns is announced.
    pub(crate) async fn subscribe(&self, url: &str, queue: &str) -> Wakeup {
        let (wakeup, mut listening) = {
            let mut state = lock(&self.state);
            let wakeup = match state.queues.get(queue).and_then(Weak::upgrade) {
                Some(w) => w,
                None => {
                    let w = Arc::new(Notify::new());
                    state.queues.insert(queue.to_owned(), Arc::downgrade(&w));
                    w
                }
            };
            let listening = match state.task.as_ref() {
                Some(r) if !r.task.is_finished() => r.listening.clone(),
                _ => {
                    let (ready_tx, ready_rx) = watch::channel(false);
                    let task = tokio::spawn(listen(
                        url.to_owned(),
                        Arc::downgrade(&self.state),
                        ready_tx,
                    ));
                    state.task = Some(Running {
                        listening: ready_rx.clone(),
                        task,
                    });
                    ready_rx
                }
            };
            (wakeup, listening)
        };
        // Without LISTEN the worker still polls; do not hold it up for long.
        let _ = tokio::time::timeout(LISTEN_WAIT, listening.wait_for(|up| *up)).await;
        wakeup
    }
}

/// Wakes one worker loop of `queue`, if this process runs any.
fn announce(state: &Mutex<State>, queue: &str) {
    let waker = lock(state).queues.get(queue).and_then(Weak::upgrade);
    if let Some(w) = waker {
        w.notify_one();
    }
}

/// Whether the task should go on; when not, it is marked ended under the same lock that
/// `subscribe` takes, so a new subscriber starts a new task instead of joining this one.
fn still_wanted(state: &Weak<Mutex<State>>) -> bool {
    let Some(state) = state.upgrade() else {
        return false;
    };
    let mut s = lock(&state);
    s.queues.retain(|_, w| w.strong_count() > 0);
    if s.queues.is_empty() {
        s.task = None;
        return false;
    }
    true
}

async fn listen(url: String, state: Weak<Mutex<State>>, listening: watch::Sender<bool>) {
    let mut retry = Duration::from_millis(200);
    loop {
        if !still_wanted(&state) {
            return;
        }
        let mut listener = match connect(&url).await {
            Ok(l) => l,
            Err(e) => {
                tracing::info!(error = %e, "LISTEN unavailable, workers poll until it is back");
                tokio::time::sleep(retry).await;
                retry = (retry * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        retry = Duration::from_millis(200);
        listening.send_replace(true);
        loop {
            tokio::select! {
                n = listener.recv() => match n {
                    Ok(n) => match state.upgrade() {
                        Some(s) => announce(&s, n.payload()),
                        None => return,
                    },
                    Err(e) => {
                        tracing::info!(error = %e, "LISTEN connection lost, reconnecting");
                        listening.send_replace(false);
                        break;
                    }
                },
                () = tokio::time::sleep(IDLE_CHECK) => {
                    if !still_wanted(&state) {
                        return;
                    }
                }
            }
        }
    }
}

async fn connect(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    listener.listen(NOTIFY_CHANNEL).await?;
    Ok(listener)
}
