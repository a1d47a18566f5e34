//! Single-use request nonces: a signed request is taken once within its validity window, whatever
//! node or process serves it, and however often it is replayed.

use colloquy_model::UnixMillis;

use crate::{Store, StoreError};

impl Store {
    /// Records `nonce` as used in `scope` (a dialect and credential) until `keep_until`. Answers
    /// `false`, recording nothing, when it was already used and is still remembered. Nonces
    /// remembered past their time are forgotten here, so the table holds one window of requests.
    pub async fn use_nonce(
        &self,
        scope: &str,
        nonce: &str,
        now: UnixMillis,
        keep_until: UnixMillis,
    ) -> Result<bool, StoreError> {
        // On the store's write path: a failed write (a full disk) closes its connection.
        let mut conn = self.writer("nonce").await?;
        let result = async {
            let mut tx = sqlx::Connection::begin(&mut *conn).await?;
            sqlx::query("DELETE FROM used_nonces WHERE expires_at <= ?").bind(now.0).execute(&mut *tx).await?;
            let inserted = sqlx::query("INSERT OR IGNORE INTO used_nonces (scope, nonce, expires_at) VALUES (?, ?, ?)")
                .bind(scope)
                .bind(nonce)
                .bind(keep_until.0)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(inserted.rows_affected() == 1)
        }
        .await;
        self.finish_write("nonce", conn, result).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_nonce_is_taken_once_per_scope_until_it_is_forgotten_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("colloquy.db");
        let store = Store::open(&path).await.unwrap();
        let (t0, until) = (UnixMillis(1_000), UnixMillis(2_000));
        assert!(store.use_nonce("zego:1", "n1", t0, until).await.unwrap());
        assert!(!store.use_nonce("zego:1", "n1", UnixMillis(1_500), until).await.unwrap());
        assert!(store.use_nonce("zego:2", "n1", t0, until).await.unwrap(), "another credential's nonce");
        store.close().await;

        // Across a restart, the nonce is still used; once its time is past, it is forgotten.
        let store = Store::open(&path).await.unwrap();
        assert!(!store.use_nonce("zego:1", "n1", UnixMillis(1_999), until).await.unwrap());
        assert!(store.use_nonce("zego:1", "n1", UnixMillis(2_000), UnixMillis(3_000)).await.unwrap());
    }
}
