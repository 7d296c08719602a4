//! The notification worker: finds newly stored letters with `varsler`, queues one store job per
//! channel and repetition day (due inside the daytime window), and sends each job when it is
//! due — only while the letter is still unread — by SMTP / the SMS gateway, or into the
//! outbox folder in development. Every notification sent is also recorded in the outbox, which
//! the citizen's notification page lists.

use std::{sync::Arc, time::Duration};

use domain::{FnrPolicy, Fodselsnummer, LetterId, Organisasjonsnummer};
use postkasse::{CitizenRef, Loa, ServiceError};
use store::{Jobs, WorkerOptions};
use time::OffsetDateTime;

use crate::{
    AppState,
    notify::{self, NOTIFY_QUEUE, NotifyJob, OutboxEntry},
};

/// How far back the first scan after a start looks for letters.
const FIRST_SCAN_LOOKBACK_MS: i64 = 24 * 3600 * 1000;

impl AppState {
    fn jobs(&self) -> Jobs {
        Jobs::new(self.inner().postkasse.db().clone())
    }

    /// Queues the notifications of letters stored since the last scan; returns how many jobs
    /// were queued (jobs already queued are not repeated).
    pub async fn scan_notifications(&self) -> anyhow::Result<usize> {
        let since = *self
            .inner()
            .scan_mark
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let since = since
            .unwrap_or_else(|| store::to_ms(OffsetDateTime::now_utc()) - FIRST_SCAN_LOOKBACK_MS);
        let letters =
            crate::missing::letters_since(self.inner().postkasse.db(), since, 500).await?;
        let jobs = self.jobs();
        let mut n = 0;
        let mut mark = since;
        for l in &letters {
            mark = mark.max(l.received_at);
            let Some(v) = notify::varsler_of(&l.forretningsmelding) else {
                continue;
            };
            let delivered = store::from_ms(l.visible_from.max(l.received_at))?;
            for job in notify::jobs_for(
                &self.inner().cfg.notify,
                &l.id,
                &l.tenant,
                &l.fnr,
                delivered,
                &v,
            ) {
                if jobs.enqueue_job(job).await?.inserted {
                    n += 1;
                }
            }
        }
        *self
            .inner()
            .scan_mark
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(mark);
        Ok(n)
    }

    async fn send_notification(&self, job: &store::Job) -> Result<(), String> {
        let nj: NotifyJob = job.payload_as().map_err(|e| e.to_string())?;
        let tenant = Organisasjonsnummer::parse(&nj.tenant).map_err(|e| e.to_string())?;
        let fnr =
            Fodselsnummer::parse(&nj.fnr, &FnrPolicy::PERMISSIVE).map_err(|e| e.to_string())?;
        let id = LetterId::parse(&nj.letter_id).map_err(|e| e.to_string())?;
        let who = CitizenRef { tenant, fnr };
        let mailbox = self.inner().postkasse.mailbox();
        match mailbox.get_letter(&who, Loa::Substantial, id).await {
            Ok(l) if !l.summary.unread => return Ok(()), // read: no reminder
            Ok(_) => {}
            Err(ServiceError::NotFound | ServiceError::NotAUser) => return Ok(()),
            Err(e) => return Err(e.to_string()),
        }
        let cfg = &self.inner().cfg.notify;
        let now = OffsetDateTime::now_utc();
        if !notify::in_window(cfg, now) {
            // Claimed late (after downtime): wait for the next window.
            let later = store::NewJob::new(NOTIFY_QUEUE, &nj)
                .map_err(|e| e.to_string())?
                .dedup_key(format!(
                    "{}:{}:{}:{}",
                    nj.letter_id,
                    nj.channel,
                    nj.day,
                    notify::into_window(cfg, now).unix_timestamp()
                ))
                .run_at(notify::into_window(cfg, now));
            self.jobs()
                .enqueue_job(later)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let sent = match nj.channel.as_str() {
            "epost" => match &self.inner().email {
                Some(g) => g
                    .send_email(&nj.to, "Du har fått digital post", &nj.text)
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
            "sms" => match &self.inner().sms {
                Some(g) => g
                    .send_sms(&nj.to, &nj.text)
                    .await
                    .map_err(|e| e.to_string()),
                None => Ok(()),
            },
            other => Err(format!("unknown channel {other}")),
        };
        match sent {
            Ok(()) => {
                let owner = format!("{tenant}:{}", fnr.as_string());
                self.inner()
                    .outbox
                    .write(
                        &owner,
                        &OutboxEntry {
                            channel: nj.channel.clone(),
                            to: nj.to.clone(),
                            text: nj.text.clone(),
                            letter_id: nj.letter_id.clone(),
                            sent_at: now,
                        },
                    )
                    .await
                    .map_err(|e| e.to_string())
            }
            Err(e) => {
                if job.attempts >= job.max_attempts {
                    // The sender must learn this by a varslingfeiletkvittering; postkasse has
                    // no service call for it yet (see the crate report).
                    tracing::warn!(
                        letter = %nj.letter_id,
                        channel = %nj.channel,
                        error = %e,
                        "notification failed for good; varslingfeiletkvittering not sent (needs postkasse)"
                    );
                }
                Err(e)
            }
        }
    }
}

/// Starts the scanner and the notification worker; they stop when `shutdown` flips to `true`.
pub fn spawn_workers(
    state: AppState,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let interval = Duration::from_secs(state.inner().cfg.notify.scan_interval_secs.max(1));
    let scan_state = state.clone();
    let mut scan_stop = shutdown.clone();
    let scanner = tokio::spawn(async move {
        loop {
            if let Err(e) = scan_state.scan_notifications().await {
                tracing::warn!(error = %e, "notification scan failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(interval) => {}
                _ = scan_stop.wait_for(|s| *s) => break,
            }
        }
    });
    let jobs = state.jobs();
    let mut stop = shutdown;
    let worker = tokio::spawn(async move {
        let st = Arc::new(state);
        let r = store::run_worker(
            jobs,
            NOTIFY_QUEUE,
            WorkerOptions::default(),
            |job| {
                let st = st.clone();
                async move { st.send_notification(&job).await }
            },
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )
        .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "notification worker stopped");
        }
    });
    vec![scanner, worker]
}
