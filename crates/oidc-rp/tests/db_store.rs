//! `DbStore` on the backend named by `SAMSPILL_TEST_BACKEND`: what a restart, a second
//! instance and a logout see.

use std::time::Duration;

use oidc_rp::{Acr, ClientAuth, DbStore, RpConfig, Session, SessionStore};
use secrecy::SecretString;
use store::{Db, sqlx};

fn session(id: &str, sid: &str, expires_at: i64) -> Session {
    Session {
        id: id.into(),
        pid: "04817197073".into(),
        sub: format!("sub-{id}"),
        acr: Acr::High,
        amr: vec!["TestID".into()],
        sid: Some(sid.into()),
        locale: Some("nn".into()),
        name: Some("Kari Nordmann".into()),
        id_token: "eyJ.id.token".into(),
        access_token: Some("at".into()),
        access_token_expires_at: Some(expires_at),
        refresh_token: None,
        auth_time: Some(1),
        created_at: 1,
        expires_at,
    }
}

fn now() -> i64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    i64::try_from(since.as_secs()).unwrap()
}

fn rp(client: &str, secret: &str) -> RpConfig {
    RpConfig {
        client_id: client.into(),
        client_auth: ClientAuth::ClientSecretBasic {
            secret: SecretString::from(secret),
        },
        ..Default::default()
    }
}

fn store(db: &Db, client: &str, ttl_secs: u64) -> DbStore {
    keyed_store(db, client, "the client secret", ttl_secs)
}

fn keyed_store(db: &Db, client: &str, secret: &str, ttl_secs: u64) -> DbStore {
    DbStore::new(
        db.clone(),
        &rp(client, secret),
        Duration::from_secs(ttl_secs),
    )
    .unwrap()
}

async fn data_of(db: &Db, table: &str, id: &str) -> String {
    sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT data FROM {table} WHERE id = $1"
    )))
    .bind(id)
    .fetch_one(db.pool())
    .await
    .unwrap()
}

async fn set_data(db: &Db, table: &str, id: &str, data: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "UPDATE {table} SET data = $1 WHERE id = $2"
    )))
    .bind(data)
    .bind(id)
    .execute(db.pool())
    .await
    .unwrap();
}

#[tokio::test]
async fn what_rests_in_the_database_shows_no_token_and_no_citizen() {
    let db = store::testing::fresh_db().await;
    let st = store(&db, "innboks", 0);
    let mut a = session("a", "sid-1", now() + 3600);
    a.refresh_token = Some("refresh-secret".into());
    st.put(&a).await.unwrap();
    let row = data_of(&db, "rp_sessions", "a").await;
    for secret in [
        "04817197073",
        "Kari",
        "eyJ.id.token",
        "refresh-secret",
        "sub-a",
    ] {
        assert!(!row.contains(secret), "{secret} in {row}");
    }
    // And it opens again, for the same credential.
    assert_eq!(st.get("a").await.unwrap(), Some(a));
}

#[tokio::test]
async fn rows_open_only_under_the_same_credential_and_in_their_own_row() {
    let db = store::testing::fresh_db().await;
    let far = now() + 3600;
    let st = store(&db, "innboks", 0);
    st.put(&session("a", "sid-1", far)).await.unwrap();
    st.put(&session("b", "sid-2", far)).await.unwrap();

    // Another credential (a rotated client secret, or someone else's instance): logged out.
    let rotated = keyed_store(&db, "innboks", "a new client secret", 0);
    assert_eq!(rotated.get("a").await.unwrap(), None);

    // Someone who can write the table copies b's sealed session into a's row: it opens for
    // neither.
    let b_data = data_of(&db, "rp_sessions", "b").await;
    set_data(&db, "rp_sessions", "a", &b_data).await;
    assert_eq!(st.get("a").await.unwrap(), None);
    assert!(st.get("b").await.unwrap().is_some());
    // Nor does a session written in plain JSON (as before sealing), nor a flipped byte.
    let plain = serde_json::to_string(&session("a", "sid-1", far)).unwrap();
    set_data(&db, "rp_sessions", "a", &plain).await;
    assert_eq!(st.get("a").await.unwrap(), None);
    let mut flipped = b_data.into_bytes();
    let last = flipped.len() - 2;
    flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
    set_data(
        &db,
        "rp_sessions",
        "b",
        std::str::from_utf8(&flipped).unwrap(),
    )
    .await;
    assert_eq!(st.get("b").await.unwrap(), None);
}

#[tokio::test]
async fn a_session_outlives_the_instance_that_wrote_it() {
    let db = store::testing::fresh_db().await;
    let far = now() + 3600;
    let a = session("a", "sid-1", far);
    {
        let first = store(&db, "innboks", 5);
        first.put(&a).await.unwrap();
        assert_eq!(first.get("a").await.unwrap(), Some(a.clone()));
    }
    // A restart (or another instance): nothing cached, the database answers.
    let second = store(&db, "innboks", 5);
    assert_eq!(second.get("a").await.unwrap(), Some(a.clone()));
    assert_eq!(second.get("unknown").await.unwrap(), None);
    // Another relying party on the same database does not see it.
    assert_eq!(store(&db, "minside", 5).get("a").await.unwrap(), None);

    // Written again (a refreshed token): replaced, not duplicated.
    let mut refreshed = a.clone();
    refreshed.access_token = Some("at-2".into());
    second.put(&refreshed).await.unwrap();
    assert_eq!(
        store(&db, "innboks", 0).get("a").await.unwrap(),
        Some(refreshed)
    );
    let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM rp_sessions")
        .fetch_one(db.pool())
        .await
        .unwrap();
    assert_eq!(rows, 1);
}

#[tokio::test]
async fn expired_sessions_are_absent_and_purged_at_the_next_login() {
    let db = store::testing::fresh_db().await;
    let st = store(&db, "innboks", 5);
    st.put(&session("old", "sid-1", now() - 1)).await.unwrap();
    assert_eq!(st.get("old").await.unwrap(), None, "expired, even cached");
    assert_eq!(store(&db, "innboks", 0).get("old").await.unwrap(), None);
    // Another client's expired session goes too.
    store(&db, "minside", 0)
        .put(&session("old-2", "sid-2", now() - 1))
        .await
        .unwrap();
    st.put(&session("new", "sid-3", now() + 60)).await.unwrap();
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM rp_sessions")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(ids, ["new"]);
}

#[tokio::test]
async fn a_logout_is_immediate_where_it_happens_and_within_the_cache_time_elsewhere() {
    let db = store::testing::fresh_db().await;
    let far = now() + 3600;
    let here = store(&db, "innboks", 60);
    let uncached = store(&db, "innboks", 0);
    let cached_elsewhere = store(&db, "innboks", 60);
    here.put(&session("a", "sid-1", far)).await.unwrap();
    assert!(cached_elsewhere.get("a").await.unwrap().is_some());

    here.delete("a").await.unwrap();
    assert_eq!(here.get("a").await.unwrap(), None, "where the logout ran");
    assert_eq!(uncached.get("a").await.unwrap(), None, "cache time 0");
    // The documented window: an instance that read the session a moment ago keeps it for
    // up to its cache time.
    assert!(cached_elsewhere.get("a").await.unwrap().is_some());
}

#[tokio::test]
async fn front_channel_logout_ends_every_session_of_the_sid_of_this_client_only() {
    let db = store::testing::fresh_db().await;
    let far = now() + 3600;
    let st = store(&db, "innboks", 60);
    let other = store(&db, "minside", 60);
    st.put(&session("a", "sid-1", far)).await.unwrap();
    st.put(&session("b", "sid-1", far)).await.unwrap();
    st.put(&session("c", "sid-2", far)).await.unwrap();
    other.put(&session("d", "sid-1", far)).await.unwrap();
    assert!(st.get("a").await.unwrap().is_some(), "cached before");

    assert_eq!(st.delete_by_sid("sid-1").await.unwrap(), 2);
    assert_eq!(st.get("a").await.unwrap(), None);
    assert_eq!(st.get("b").await.unwrap(), None);
    assert!(st.get("c").await.unwrap().is_some());
    assert!(other.get("d").await.unwrap().is_some(), "another client's");
    assert_eq!(st.delete_by_sid("sid-1").await.unwrap(), 0);
}
