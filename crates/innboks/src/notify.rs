//! Notifications of a letter's `varsler` (DPI `epostvarsel` / `smsvarsel`): when they are
//! due (each repetition day after delivery, moved into the daytime window), and the channels
//! that send them — SMTP through `lettre`, an [`SmsGateway`], and the development default,
//! the [`Outbox`] folder that the citizen's notification page also reads.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime, Time};

use crate::views::to_oslo;

/// Notification settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifyConfig {
    /// First hour (Norwegian time, 0–23) in which notifications may be sent.
    pub window_start_hour: u8,
    /// Hour (1–24) from which no more notifications are sent that day.
    pub window_end_hour: u8,
    /// SMTP relay for e-mail; none = e-mails go to the outbox folder.
    pub smtp: Option<SmtpConfig>,
    /// Sender address of e-mails.
    pub from: String,
    /// Seconds between two looks for newly stored letters with `varsler`.
    pub scan_interval_secs: u64,
    /// Attempts to send one notification (transient failures are retried with backoff);
    /// when they are used up, or the channel refuses it for good, the sender gets a
    /// `varslingfeiletkvittering`.
    pub max_attempts: u32,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        Self {
            window_start_hour: 9,
            window_end_hour: 21,
            smtp: None,
            from: "Digital postkasse <ikke-svar@postkasse.samspill.invalid>".into(),
            scan_interval_secs: 5,
            max_attempts: 5,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    /// STARTTLS before sending (on everywhere but a local relay).
    #[serde(default = "yes")]
    pub starttls: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// The address or number cannot be used (permanent).
    #[error("invalid recipient: {0}")]
    Recipient(String),
    /// The channel refused the notification and will refuse it again (SMTP 5xx, a gateway's
    /// 4xx): permanent.
    #[error("refused: {0}")]
    Refused(String),
    /// Could not send now (connection, timeout, SMTP 4xx): worth another attempt.
    #[error("sending failed: {0}")]
    Send(String),
}

impl NotifyError {
    /// Another attempt cannot succeed.
    pub fn is_permanent(&self) -> bool {
        matches!(self, NotifyError::Recipient(_) | NotifyError::Refused(_))
    }
}

/// Whether a notification that failed with `error` on attempt `attempt` of `max_attempts` has
/// failed for good (the sender is then told with a `varslingfeiletkvittering`).
pub fn failed_for_good(error: &NotifyError, attempt: u32, max_attempts: u32) -> bool {
    error.is_permanent() || attempt >= max_attempts
}

/// When a notification for a letter delivered at `delivered` is due, for repetition day
/// `day` (0 = the delivery day): that day at the delivery time of day, moved into the
/// window — forward to its start when earlier, to the next day's start when later.
pub fn due_at(cfg: &NotifyConfig, delivered: OffsetDateTime, day: u8) -> OffsetDateTime {
    let t = to_oslo(delivered + Duration::days(i64::from(day)));
    into_window(cfg, t)
}

/// `t`, or the next moment inside the window.
pub fn into_window(cfg: &NotifyConfig, t: OffsetDateTime) -> OffsetDateTime {
    let t = to_oslo(t);
    let start = Time::from_hms(cfg.window_start_hour.min(23), 0, 0).unwrap_or(Time::MIDNIGHT);
    if t.hour() < cfg.window_start_hour {
        return to_oslo(t.replace_time(start));
    }
    if t.hour() >= cfg.window_end_hour {
        return to_oslo((t + Duration::days(1)).replace_time(start));
    }
    t
}

pub fn in_window(cfg: &NotifyConfig, t: OffsetDateTime) -> bool {
    let h = to_oslo(t).hour();
    h >= cfg.window_start_hour && h < cfg.window_end_hour
}

/// Sends SMS; a real gateway implements this (HTTP API of an SMS provider).
#[async_trait::async_trait]
pub trait SmsGateway: Send + Sync {
    async fn send_sms(&self, to: &str, text: &str) -> Result<(), NotifyError>;
}

/// Sends e-mail.
#[async_trait::async_trait]
pub trait EmailGateway: Send + Sync {
    async fn send_email(&self, to: &str, subject: &str, text: &str) -> Result<(), NotifyError>;
}

/// E-mail over SMTP with `lettre`.
pub struct SmtpGateway {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpGateway {
    pub fn new(cfg: &SmtpConfig, from: &str) -> Result<Self, NotifyError> {
        let builder = if cfg.starttls {
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(&cfg.host)
                .map_err(|e| NotifyError::Send(e.to_string()))?
        } else {
            lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&cfg.host)
        };
        let from = from
            .parse()
            .map_err(|e: lettre::address::AddressError| NotifyError::Recipient(e.to_string()))?;
        Ok(Self {
            transport: builder.port(cfg.port).build(),
            from,
        })
    }
}

#[async_trait::async_trait]
impl EmailGateway for SmtpGateway {
    async fn send_email(&self, to: &str, subject: &str, text: &str) -> Result<(), NotifyError> {
        use lettre::AsyncTransport;
        let to = to
            .parse()
            .map_err(|e: lettre::address::AddressError| NotifyError::Recipient(e.to_string()))?;
        let msg = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(text.to_owned())
            .map_err(|e| NotifyError::Send(e.to_string()))?;
        self.transport.send(msg).await.map(|_| ()).map_err(|e| {
            if e.is_permanent() {
                NotifyError::Refused(e.to_string())
            } else {
                NotifyError::Send(e.to_string())
            }
        })
    }
}

/// One sent notification as the outbox keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OutboxEntry {
    pub channel: String,
    pub to: String,
    pub text: String,
    pub letter_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub sent_at: OffsetDateTime,
}

/// The development channel: every notification is written as a JSON file in a folder per
/// citizen, and listed on the citizen's notification page.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    fn folder(&self, owner: &str) -> PathBuf {
        self.dir.join(hex::encode(Sha256::digest(owner.as_bytes())))
    }

    /// Records a notification for the citizen `owner` ("tenant:fnr").
    pub async fn write(&self, owner: &str, e: &OutboxEntry) -> std::io::Result<()> {
        let dir = self.folder(owner);
        tokio::fs::create_dir_all(&dir).await?;
        let name = format!(
            "{}-{}.json",
            e.sent_at.unix_timestamp_nanos(),
            uuid::Uuid::new_v4()
        );
        tokio::fs::write(dir.join(name), serde_json::to_vec(e)?).await
    }

    /// The citizen's notifications, newest first.
    pub async fn list(&self, owner: &str) -> std::io::Result<Vec<OutboxEntry>> {
        let mut out = Vec::new();
        let mut rd = match tokio::fs::read_dir(self.folder(owner)).await {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(e),
        };
        while let Some(e) = rd.next_entry().await? {
            if let Ok(v) = serde_json::from_slice(&tokio::fs::read(e.path()).await?) {
                out.push(v);
            }
        }
        out.sort_by_key(|e: &OutboxEntry| std::cmp::Reverse(e.sent_at));
        Ok(out)
    }
}

/// The store queue of notifications.
pub const NOTIFY_QUEUE: &str = "innboks.varsel";

/// One notification to send (one channel, one repetition day of one letter).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NotifyJob {
    pub letter_id: String,
    pub tenant: String,
    pub fnr: String,
    /// `epost` or `sms`.
    pub channel: String,
    pub to: String,
    pub text: String,
    pub day: u8,
}

/// The jobs for a letter's `varsler`: one per channel and repetition day, due in the window.
pub fn jobs_for(
    cfg: &NotifyConfig,
    letter_id: &str,
    tenant: &str,
    fnr: &str,
    delivered: OffsetDateTime,
    varsler: &dpi::message::Varsler,
) -> Vec<store::NewJob> {
    let mut plan: Vec<(&str, &str, &str, &[u8])> = Vec::new();
    if let Some(e) = &varsler.epostvarsel {
        plan.push(("epost", &e.epostadresse, &e.varslingstekst, &e.repetisjoner));
    }
    if let Some(s) = &varsler.smsvarsel {
        plan.push((
            "sms",
            &s.mobiltelefonnummer,
            &s.varslingstekst,
            &s.repetisjoner,
        ));
    }
    let mut out = Vec::new();
    for (channel, to, text, days) in plan {
        for day in days {
            let job = NotifyJob {
                letter_id: letter_id.into(),
                tenant: tenant.into(),
                fnr: fnr.into(),
                channel: channel.into(),
                to: to.into(),
                text: text.into(),
                day: *day,
            };
            if let Ok(j) = store::NewJob::new(NOTIFY_QUEUE, &job) {
                out.push(
                    j.dedup_key(format!("{letter_id}:{channel}:{day}"))
                        .run_at(due_at(cfg, delivered, *day))
                        .max_attempts(cfg.max_attempts.max(1)),
                );
            }
        }
    }
    out
}

/// The DPI channel of a job's `channel`.
pub fn kanal(channel: &str) -> Option<dpi::message::Varslingskanal> {
    match channel {
        "epost" => Some(dpi::message::Varslingskanal::Epost),
        "sms" => Some(dpi::message::Varslingskanal::Sms),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn due_times_fall_in_the_daytime_window() {
        let cfg = NotifyConfig::default();
        // Delivered 23:30 Norwegian time (22:30 UTC in winter): day 0 goes out 09:00 next day.
        let d = datetime!(2026-01-10 22:30 UTC);
        assert_eq!(due_at(&cfg, d, 0), datetime!(2026-01-11 08:00 UTC));
        // Day 7 after a 12:00 delivery: 12:00 a week later.
        let d = datetime!(2026-01-10 11:00 UTC);
        assert_eq!(due_at(&cfg, d, 7), datetime!(2026-01-17 11:00 UTC));
        // Early morning moves forward to 09:00 the same day.
        let d = datetime!(2026-01-10 05:00 UTC);
        assert_eq!(due_at(&cfg, d, 0), datetime!(2026-01-10 08:00 UTC));
        assert!(in_window(&cfg, datetime!(2026-07-01 07:00 UTC)));
        assert!(!in_window(&cfg, datetime!(2026-07-01 06:59 UTC)));
        assert!(!in_window(&cfg, datetime!(2026-07-01 19:00 UTC)));
    }

    #[test]
    fn only_refusals_and_the_last_attempt_are_final() {
        let transient = NotifyError::Send("connection refused".into());
        assert!(!failed_for_good(&transient, 1, 5));
        assert!(!failed_for_good(&transient, 4, 5));
        assert!(failed_for_good(&transient, 5, 5));
        assert!(
            failed_for_good(&transient, 6, 5),
            "a lease taken over counts too"
        );
        for permanent in [
            NotifyError::Refused("550 5.1.1 no such user".into()),
            NotifyError::Recipient("not an address".into()),
        ] {
            assert!(failed_for_good(&permanent, 1, 5), "{permanent}");
        }
        assert_eq!(kanal("epost"), Some(dpi::message::Varslingskanal::Epost));
        assert_eq!(kanal("sms"), Some(dpi::message::Varslingskanal::Sms));
        assert_eq!(kanal("brevdue"), None);
    }

    #[tokio::test]
    async fn outbox_keeps_citizens_apart() {
        let dir = tempfile::tempdir().unwrap();
        let o = Outbox::new(dir.path().to_path_buf());
        let e = OutboxEntry {
            channel: "sms".into(),
            to: "+4799999999".into(),
            text: "Du har fått brev".into(),
            letter_id: "x".into(),
            sent_at: OffsetDateTime::now_utc(),
        };
        o.write("t:a", &e).await.unwrap();
        assert_eq!(o.list("t:a").await.unwrap().len(), 1);
        assert!(o.list("t:b").await.unwrap().is_empty());
    }
}
