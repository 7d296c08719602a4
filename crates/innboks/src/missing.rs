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
