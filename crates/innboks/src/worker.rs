//! The notification worker: finds newly stored letters with `varsler`, queues one store job per
//! channel and repetition day (due inside the daytime window), and sends each job when it is
//! due — only while the letter is still unread — by SMTP / the SMS gateway, or into the
//! outbox folder in development. Every notification sent is also recorded in the outbox, which
//! the citizen's notification page lists. A notification that fails for good (refused by the
//! channel, or its attempts used up) is answered to the sender with a signed
//! `varslingfeiletkvittering`, once per letter and channel.

use std::{sync::Arc, time::Duration};

use domain::{FnrPolicy, Fodselsnummer, LetterId, Organisasjonsnummer};
use postkasse::{CitizenRef, Loa, ServiceError};
use store::Jobs;
use time::OffsetDateTime;

use crate::{
    AppState,
    notify::{self, NOTIFY_QUEUE, NotifyJob, OutboxEntry},
};

/// How far back the first scan after a start looks for letters.
const FIRST_SCAN_LOOKBACK_MS: i64 = 24 * 3600 * 1000;

/// How far behind the newest letter seen each scan starts again. A letter's stored time is
/// taken just before its transaction commits, so a letter may become visible a moment after
/// a scan that already saw a newer one; reading a letter again is harmless (the jobs of its
/// notifications are deduplicated).
const LATE_COMMIT_MARGIN_MS: i64 = 60 * 1000;

/// Letters read per call of the service.
const SCAN_PAGE: u32 = 500;

impl AppState {
    fn jobs(&self) -> Jobs {
        Jobs::new(self.inner().postkasse.db().clone())
    }

    /// Queues the notifications of letters stored since the last scan; returns how many jobs
    /// were queued (jobs already queued are not repeated).
    pub async fn scan_notifications(&self) -> anyhow::Result<usize> {
        let mark = *self
            .inner()
            .scan_mark
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let since_ms = match mark {
            Some(m) => m - LATE_COMMIT_MARGIN_MS,
            None => store::to_ms(OffsetDateTime::now_utc()) - FIRST_SCAN_LOOKBACK_MS,
        };
        let mut newest = mark.unwrap_or(since_ms);
        let cfg = &self.inner().cfg.notify;
        let mailbox = self.inner().postkasse.mailbox();
        let jobs = self.jobs();
        let mut n = 0;
        let (mut since, mut after) = (store::from_ms(since_ms)?, None);
        loop {
            let page = mailbox
                .letters_stored_since(since, after, SCAN_PAGE)
                .await?;
            for l in &page {
                newest = newest.max(store::to_ms(l.stored_at));
                let Some(v) = &l.varsler else {
                    continue;
                };
                for job in notify::jobs_for(
                    cfg,
                    &l.id.to_string(),
                    &l.citizen.tenant.to_string(),
                    &l.citizen.fnr.as_string(),
                    l.visible_from.max(l.stored_at),
                    v,
                ) {
                    if jobs.enqueue_job(job).await?.inserted {
                        n += 1;
                    }
                }
            }
            match page.last() {
                Some(last) if page.len() >= SCAN_PAGE as usize => {
                    since = last.stored_at;
                    after = Some(last.id);
                }
                _ => break,
            }
        }
        *self
            .inner()
            .scan_mark
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(newest);
        Ok(n)
    }

    /// The notification of `nj` failed for good: the sender learns it by a signed
    /// `varslingfeiletkvittering` (once per letter and channel).
    async fn tell_sender(
        &self,
        who: &CitizenRef,
        id: LetterId,
        nj: &NotifyJob,
        error: &notify::NotifyError,
        attempts: u32,
    ) -> Result<(), String> {
        let Some(kanal) = notify::kanal(&nj.channel) else {
            return Err(format!("unknown channel {}", nj.channel));
        };
        let beskrivelse = if error.is_permanent() {
            format!("Varselet ble avvist: {error}")
        } else {
            format!("Varselet kunne ikke sendes etter {attempts} forsøk: {error}")
        };
        match self
            .inner()
            .postkasse
            .mailbox()
            .notification_failed(who, id, kanal, &beskrivelse)
            .await
        {
            Ok(queued) => {
                tracing::warn!(
                    letter = %nj.letter_id,
                    channel = %nj.channel,
                    error = %error,
                    receipt_queued = queued,
                    "notification failed for good; the sender gets a varslingfeiletkvittering"
                );
                Ok(())
            }
            // The letter or the citizen is gone: nobody left to notify or to answer for.
            Err(ServiceError::NotFound | ServiceError::NotAUser) => Ok(()),
            Err(e) => Err(format!(
                "{error}; the varslingfeiletkvittering could not be queued: {e}"
            )),
        }
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
                .run_at(notify::into_window(cfg, now))
                .max_attempts(cfg.max_attempts.max(1));
            self.jobs()
                .enqueue_job(later)
                .await
                .map_err(|e| e.to_string())?;
            return Ok(());
        }
        let sent = match nj.channel.as_str() {
            "epost" => match &self.inner().email {
                Some(g) => {
                    g.send_email(&nj.to, "Du har fått digital post", &nj.text)
                        .await
                }
                None => Ok(()),
            },
            "sms" => match &self.inner().sms {
                Some(g) => g.send_sms(&nj.to, &nj.text).await,
                None => Ok(()),
            },
            other => return Err(format!("unknown channel {other}")),
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
            Err(e) if notify::failed_for_good(&e, job.attempts, job.max_attempts) => {
                self.tell_sender(&who, id, &nj, &e, job.attempts).await?;
                if e.is_permanent() {
                    // Done with: another attempt would be refused the same way.
                    Ok(())
                } else {
                    // The last attempt: failing it leaves the job dead, with its error.
                    Err(e.to_string())
                }
            }
            Err(e) => Err(e.to_string()),
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
    let st = Arc::new(state);
    let mut handles = store::spawn_workers(
        &jobs,
        NOTIFY_QUEUE,
        "innboks-notify",
        1,
        Duration::from_secs(60),
        move |job| {
            let st = st.clone();
            async move { st.send_notification(&job).await }
        },
        &shutdown,
    );
    handles.push(scanner);
    handles
}
