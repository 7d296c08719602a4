//! What the inbox needs and `postkasse::service` does not offer yet: the attachment count of
//! the letters on a page. It belongs in `LetterSummary` (one `COUNT` in the list query);
//! until it moves there, this one read-only query asks for exactly the ids the service has
//! just returned for this citizen, so it cannot reach any other citizen's letters.

use std::collections::HashMap;

use domain::LetterId;
use store::{Db, sqlx, sqlx::Row};

/// Number of `vedlegg` documents per letter id.
pub async fn attachment_counts(
    db: &Db,
    ids: &[LetterId],
) -> Result<HashMap<String, i64>, store::StoreError> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let params = (1..=ids.len())
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    let sql = format!(
        "SELECT letter_id, COUNT(*) AS n FROM postkasse_documents \
         WHERE role = 'vedlegg' AND letter_id IN ({params}) GROUP BY letter_id"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id.to_string());
    }
    let rows = q.fetch_all(db.pool()).await?;
    let mut out = HashMap::new();
    for r in rows {
        let id: String = r.try_get("letter_id")?;
        let n: i64 = r.try_get("n")?;
        out.insert(id, n);
    }
    Ok(out)
}

/// A stored letter with what its notifications need.
pub struct LetterForNotice {
    pub id: String,
    pub tenant: String,
    pub fnr: String,
    pub visible_from: i64,
    pub received_at: i64,
    pub forretningsmelding: String,
}

/// Letters stored after `since_ms` (oldest first, at most `limit`): the notifier schedules
/// their `varsler`. Belongs in postkasse as a hook of letter processing (or a service call
/// returning the letter's `varsler`); read-only here.
pub async fn letters_since(
    db: &Db,
    since_ms: i64,
    limit: i64,
) -> Result<Vec<LetterForNotice>, store::StoreError> {
    let rows = sqlx::query(
        "SELECT l.id, l.tenant, c.fnr, l.visible_from, l.received_at, l.forretningsmelding \
         FROM postkasse_letters l JOIN postkasse_citizens c ON c.id = l.citizen_id \
         WHERE l.received_at > $1 ORDER BY l.received_at LIMIT $2",
    )
    .bind(since_ms)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|r| {
            Ok(LetterForNotice {
                id: r.try_get("id")?,
                tenant: r.try_get("tenant")?,
                fnr: r.try_get("fnr")?,
                visible_from: r.try_get("visible_from")?,
                received_at: r.try_get("received_at")?,
                forretningsmelding: r.try_get("forretningsmelding")?,
            })
        })
        .collect()
}
