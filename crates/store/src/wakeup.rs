//! Job wake-ups on PostgreSQL: one `LISTEN` connection per [`Db`](crate::Db), shared by every
//! worker loop of the process through a broadcast channel. A listener per worker loop cost a
//! server connection each (a sender with 16 workers held 16 of them); now it is one per pool.
//! The listening task reconnects after errors and ends once no worker listens any more.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, watch};

use crate::sql::NOTIFY_CHANNEL;

/// Queue names of enqueued jobs, as they are announced.
pub(crate) type Wakeup = Arc<str>;

#[derive(Default)]
pub(crate) struct Wakeups {
    running: Mutex<Option<Running>>,
}

struct Running {
    tx: broadcast::Sender<Wakeup>,
    /// `true` while the `LISTEN` is in place.
    listening: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// How often the listening task checks whether anyone still listens.
const IDLE_CHECK: Duration = Duration::from_secs(5);

impl Wakeups {
    /// A receiver of wake-ups; starts the listening task when none runs, and waits (briefly)
    /// until the `LISTEN` is in place, so that a job enqueued after this returns is announced.
    pub(crate) async fn subscribe(&self, url: &str) -> broadcast::Receiver<Wakeup> {
        let (rx, mut listening) = {
            let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
            match running.as_ref() {
                Some(r) if !r.task.is_finished() => (r.tx.subscribe(), r.listening.clone()),
                _ => {
                    // Bursts of enqueues lag a slow receiver; lagging only means "look now",
                    // which the worker does anyway.
                    let (tx, rx) = broadcast::channel(256);
                    let (ready_tx, ready_rx) = watch::channel(false);
                    let task = tokio::spawn(listen(url.to_owned(), tx.clone(), ready_tx));
                    *running = Some(Running {
                        tx,
                        listening: ready_rx.clone(),
                        task,
                    });
                    (rx, ready_rx)
                }
            }
        };
        // Without LISTEN the worker still polls; do not hold it up for long.
        let _ = tokio::time::timeout(LISTEN_WAIT, listening.wait_for(|up| *up)).await;
        rx
    }
}

/// How long a new subscriber waits for the `LISTEN` to be in place.
const LISTEN_WAIT: Duration = Duration::from_secs(5);

async fn listen(url: String, tx: broadcast::Sender<Wakeup>, listening: watch::Sender<bool>) {
    let mut retry = Duration::from_millis(200);
    loop {
        if tx.receiver_count() == 0 {
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
                    Ok(n) => {
                        // No receivers is not an error here: the idle check ends the task.
                        let _ = tx.send(Arc::from(n.payload()));
                    }
                    Err(e) => {
                        tracing::info!(error = %e, "LISTEN connection lost, reconnecting");
                        listening.send_replace(false);
                        break;
                    }
                },
                () = tokio::time::sleep(IDLE_CHECK) => {
                    if tx.receiver_count() == 0 {
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
