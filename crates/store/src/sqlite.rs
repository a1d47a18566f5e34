//! The records in a SQLite file (the embedded default): one node, one file in its data dir.

use std::path::Path;
use std::time::Duration;

use colloquy_model::{
    AgentId, AgentRecord, AgentSpec, AgentState, AppId, ExitReason, HistoryEntry, TurnRecord, UnixMillis,
};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, FromRow, SqliteConnection, SqlitePool};

use crate::rows::{
    AgentRow, HistoryRow, PendingRow, StateChangeRow, TemplateRow, TurnColumns, TurnRow, headers_column, reason_parts,
    spec_column,
};
use crate::{
    AgentFilter, AgentPage, ListCursor, Outbox, OutgoingWebhook, PendingWebhook, Records, SqlFlavor, StateChange,
    StoreError, StoreOptions, Template, TemplateKey, Unrecorded, WEBHOOK_CLAIM,
};

#[derive(Clone, Debug)]
pub(crate) struct SqliteRecords {
    pool: SqlitePool,
    unrecorded: Unrecorded,
    /// This store's name on the outbox rows it takes for delivery.
    claimer: String,
}

impl SqliteRecords {
    pub async fn open(path: &Path, store_options: StoreOptions, unrecorded: Unrecorded) -> Result<Self, StoreError> {
        let mut options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL with NORMAL survives a process crash with nothing lost; only an OS crash can lose the
            // last transactions, which is the trade every SQLite server makes.
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(5))
            .foreign_keys(true);
        if let Some(pages) = store_options.max_page_count {
            options = options.pragma("max_page_count", pages.to_string());
        }
        let pool = SqlitePoolOptions::new().max_connections(4).connect_with(options).await?;
        sqlx::migrate!("./migrations").run(&pool).await?;
        Ok(SqliteRecords { pool, unrecorded, claimer: uuid::Uuid::now_v7().to_string() })
    }
}

/// Writes one delivery in `state` ('pending', due at once, or 'reserved').
async fn insert_webhook(tx: &mut SqliteConnection, webhook: &OutgoingWebhook, state: &str) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO webhook_outbox (agent_id, app_id, url, headers, body, state, next_attempt_at, created_at) \
         VALUES (?, COALESCE((SELECT app_id FROM agents WHERE id = ?), ''), ?, ?, ?, ?, ?, ?)",
    )
    .bind(webhook.agent_id.as_str())
    .bind(webhook.agent_id.as_str())
    .bind(&webhook.url)
    .bind(headers_column(webhook)?)
    .bind(&webhook.body)
    .bind(state)
    .bind(webhook.created_at.0)
    .bind(webhook.created_at.0)
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_state_change(
    tx: &mut SqliteConnection,
    id: &AgentId,
    at: UnixMillis,
    state: &AgentState,
) -> Result<(), StoreError> {
    let (code, detail) = reason_parts(state.reason());
    sqlx::query(
        "INSERT INTO agent_state_changes (agent_id, at, status, reason_code, reason_detail) VALUES (?, ?, ?, ?, ?)",
    )
    .bind(id.as_str())
    .bind(at.0)
    .bind(state.status().as_str())
    .bind(code)
    .bind(detail)
    .execute(tx)
    .await?;
    Ok(())
}

impl Records for SqliteRecords {
    async fn close(&self) {
        self.pool.close().await;
    }

    async fn insert_agent(&self, agent: &AgentRecord, crash_ending: &[OutgoingWebhook]) -> Result<(), StoreError> {
        let spec = spec_column(&agent.spec)?;
        let (code, detail) = reason_parts(agent.state.reason());
        let mut conn = self.unrecorded.writer(&self.pool, "agent").await?;
        let result = async {
            let mut tx = conn.begin().await?;
            let inserted = sqlx::query(
                "INSERT INTO agents (id, app_id, name, channel, status, reason_code, reason_detail, spec, created_at, \
                 stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(agent.id.as_str())
            .bind(agent.app.as_str())
            .bind(agent.spec.name.as_str())
            .bind(agent.spec.channel.as_str())
            .bind(agent.state.status().as_str())
            .bind(code)
            .bind(detail)
            .bind(spec)
            .bind(agent.created_at.0)
            .bind(agent.stopped_at.map(|t| t.0))
            .execute(&mut *tx)
            .await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(StoreError::NameTaken(agent.spec.name.to_string()));
                }
                other => other?,
            };
            insert_state_change(&mut tx, &agent.id, agent.created_at, &agent.state).await?;
            for webhook in crash_ending {
                insert_webhook(&mut tx, webhook, "reserved").await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.unrecorded.finish("agent", conn, result).await
    }

    async fn set_state(
        &self,
        id: &AgentId,
        state: &AgentState,
        at: UnixMillis,
        outbox: Outbox<'_>,
    ) -> Result<(), StoreError> {
        let (code, detail) = reason_parts(state.reason());
        let terminal = state.status().is_terminal();
        let stopped_at = terminal.then_some(at.0);
        let mut conn = self.unrecorded.writer(&self.pool, "state change").await?;
        let result = async {
            let mut tx = conn.begin().await?;
            sqlx::query(
                "UPDATE agents SET status = ?, reason_code = ?, reason_detail = ?, \
                 stopped_at = COALESCE(?, stopped_at) WHERE id = ?",
            )
            .bind(state.status().as_str())
            .bind(code)
            .bind(detail)
            .bind(stopped_at)
            .bind(id.as_str())
            .execute(&mut *tx)
            .await?;
            insert_state_change(&mut tx, id, at, state).await?;
            if terminal || outbox.crash_ending.is_some() {
                sqlx::query("DELETE FROM webhook_outbox WHERE agent_id = ? AND state = 'reserved'")
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
            }
            if !terminal {
                for webhook in outbox.crash_ending.unwrap_or_default() {
                    insert_webhook(&mut tx, webhook, "reserved").await?;
                }
            }
            for webhook in outbox.deliver {
                insert_webhook(&mut tx, webhook, "pending").await?;
            }
            tx.commit().await?;
            Ok(())
        }
        .await;
        self.unrecorded.finish("state change", conn, result).await
    }

    async fn set_spec(&self, id: &AgentId, spec: &AgentSpec) -> Result<(), StoreError> {
        let spec = spec_column(spec)?;
        let mut conn = self.unrecorded.writer(&self.pool, "configuration").await?;
        let result = sqlx::query("UPDATE agents SET spec = ? WHERE id = ?")
            .bind(spec)
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(StoreError::from);
        self.unrecorded.finish("configuration", conn, result).await
    }

    async fn agent(&self, app: &AppId, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        let row: Option<AgentRow> = sqlx::query_as("SELECT * FROM agents WHERE id = ? AND app_id = ?")
            .bind(id.as_str())
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(AgentRow::into_record).transpose()
    }

    async fn list_agents(
        &self,
        app: &AppId,
        filter: &AgentFilter,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<AgentPage, StoreError> {
        let mut sql = format!("SELECT * FROM agents WHERE app_id = ?{}", filter.conditions(SqlFlavor::Sqlite, 2));
        if after.is_some() {
            sql.push_str(" AND seq < ?");
        }
        sql.push_str(" ORDER BY seq DESC LIMIT ?");
        // Built only from the constant fragments above and `?` placeholders: every value is bound.
        let mut query = filter.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app.as_str()));
        if let Some(ListCursor(seq)) = after {
            query = query.bind(seq);
        }
        // One row more than asked tells whether another page follows.
        let rows = query.bind(i64::from(limit) + 1).fetch_all(&self.pool).await?;
        let rows = rows.iter().map(AgentRow::from_row).collect::<Result<Vec<_>, _>>()?;
        AgentPage::of(rows, limit)
    }

    async fn count_agents(&self, app: &AppId, filter: &AgentFilter) -> Result<u64, StoreError> {
        let sql =
            format!("SELECT COUNT(*) AS n FROM agents WHERE app_id = ?{}", filter.conditions(SqlFlavor::Sqlite, 2));
        // Built only from constant fragments and `?` placeholders: every value is bound.
        let row = filter.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app.as_str())).fetch_one(&self.pool).await?;
        let n: i64 = sqlx::Row::try_get(&row, "n")?;
        Ok(n.max(0) as u64)
    }

    async fn state_changes(&self, id: &AgentId) -> Result<Vec<StateChange>, StoreError> {
        let rows: Vec<StateChangeRow> = sqlx::query_as(
            "SELECT at, status, reason_code, reason_detail FROM agent_state_changes WHERE agent_id = ? ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(StateChangeRow::into_change).collect()
    }

    async fn fail_orphans(&self, at: UnixMillis) -> Result<Vec<AgentId>, StoreError> {
        let state = AgentState::exited(ExitReason::NodeRestarted);
        let mut conn = self.unrecorded.writer(&self.pool, "state change").await?;
        let result = async {
            let mut tx = conn.begin().await?;
            let ids: Vec<String> =
                sqlx::query_scalar("SELECT id FROM agents WHERE status NOT IN ('STOPPED', 'FAILED')")
                    .fetch_all(&mut *tx)
                    .await?;
            let ids: Vec<AgentId> = ids.into_iter().map(AgentId::from_string).collect();
            let (code, detail) = reason_parts(state.reason());
            for id in &ids {
                sqlx::query(
                    "UPDATE agents SET status = ?, reason_code = ?, reason_detail = ?, stopped_at = ? WHERE id = ?",
                )
                .bind(state.status().as_str())
                .bind(code)
                .bind(detail)
                .bind(at.0)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
                insert_state_change(&mut tx, id, at, &state).await?;
                sqlx::query(
                    "UPDATE webhook_outbox SET state = 'pending', next_attempt_at = ?, created_at = ? \
                     WHERE agent_id = ? AND state = 'reserved'",
                )
                .bind(at.0)
                .bind(at.0)
                .bind(id.as_str())
                .execute(&mut *tx)
                .await?;
            }
            // Reserved rows of agents that are over cannot be delivered: their real ending was.
            sqlx::query(
                "DELETE FROM webhook_outbox WHERE state = 'reserved' AND agent_id NOT IN \
                 (SELECT id FROM agents WHERE status NOT IN ('STOPPED', 'FAILED'))",
            )
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(ids)
        }
        .await;
        self.unrecorded.finish("state change", conn, result).await
    }

    async fn append_history(&self, id: &AgentId, entry: &HistoryEntry) -> Result<(), StoreError> {
        let mut conn = self.unrecorded.writer(&self.pool, "history").await?;
        let result = sqlx::query(
            "INSERT INTO history (agent_id, turn_id, speaker, content, interrupted, at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(entry.turn_id as i64)
        .bind(entry.speaker.as_str())
        .bind(&entry.content)
        .bind(entry.interrupted)
        .bind(entry.at.0)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(StoreError::from);
        self.unrecorded.finish("history", conn, result).await
    }

    async fn history(&self, id: &AgentId) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows: Vec<HistoryRow> = sqlx::query_as(
            "SELECT turn_id, speaker, content, interrupted, at FROM history WHERE agent_id = ? ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(HistoryRow::into_entry).collect()
    }

    async fn record_turn(&self, id: &AgentId, turn: &TurnRecord) -> Result<(), StoreError> {
        let columns = TurnColumns::of(turn)?;
        let mut conn = self.unrecorded.writer(&self.pool, "turn").await?;
        let result = sqlx::query(
            "INSERT OR REPLACE INTO turns \
             (agent_id, turn_id, start_kind, end_kind, started_at, ended_at, metrics, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(turn.turn_id as i64)
        .bind(columns.start)
        .bind(columns.end)
        .bind(turn.started_at.0)
        .bind(turn.ended_at.0)
        .bind(columns.metrics)
        .bind(columns.detail)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(StoreError::from);
        self.unrecorded.finish("turn", conn, result).await
    }

    async fn turns(&self, id: &AgentId) -> Result<Vec<TurnRecord>, StoreError> {
        let rows: Vec<TurnRow> = sqlx::query_as(
            "SELECT turn_id, start_kind, end_kind, started_at, ended_at, metrics, detail FROM turns \
             WHERE agent_id = ? ORDER BY turn_id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(TurnRow::into_record).collect()
    }

    async fn enqueue_webhook(&self, webhook: &OutgoingWebhook, max_pending: u32) -> Result<bool, StoreError> {
        let headers = headers_column(webhook)?;
        let mut conn = self.unrecorded.writer(&self.pool, "webhook").await?;
        let result = sqlx::query(
            "INSERT INTO webhook_outbox (agent_id, app_id, url, headers, body, next_attempt_at, created_at) \
             SELECT ?, COALESCE((SELECT app_id FROM agents WHERE id = ?), ''), ?, ?, ?, ?, ? \
             WHERE (SELECT COUNT(*) FROM webhook_outbox WHERE state = 'pending') < ?",
        )
        .bind(webhook.agent_id.as_str())
        .bind(webhook.agent_id.as_str())
        .bind(&webhook.url)
        .bind(headers)
        .bind(&webhook.body)
        .bind(webhook.created_at.0)
        .bind(webhook.created_at.0)
        .bind(i64::from(max_pending))
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(StoreError::from);
        self.unrecorded.finish("webhook", conn, result).await
    }

    async fn apps_with_due_webhooks(&self, now: UnixMillis) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT app_id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= ? \
             AND (claimed_by IS NULL OR claimed_by = ? OR claim_until <= ?)",
        )
        .bind(now.0)
        .bind(&self.claimer)
        .bind(now.0)
        .fetch_all(&self.pool)
        .await?)
    }

    async fn claim_due_webhooks(
        &self,
        app: Option<&str>,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<PendingWebhook>, StoreError> {
        // One statement: SQLite runs it under its write lock, so two stores on one file cannot
        // both take a row.
        let until = now.0.saturating_add(WEBHOOK_CLAIM.as_millis() as i64);
        let mut conn = self.pool.acquire().await?;
        let result = sqlx::query_as(
            "UPDATE webhook_outbox SET claimed_by = ?1, claim_until = ?2 WHERE seq IN \
             (SELECT seq FROM webhook_outbox AS o WHERE state = 'pending' AND next_attempt_at <= ?3 \
             AND (?4 IS NULL OR app_id = ?4) AND (claimed_by IS NULL OR claimed_by = ?1 OR claim_until <= ?3) \
             AND NOT EXISTS (SELECT 1 FROM webhook_outbox AS p WHERE p.state = 'pending' AND p.url = o.url \
             AND (p.created_at, p.seq) < (o.created_at, o.seq)) ORDER BY next_attempt_at, seq LIMIT ?5) \
             RETURNING seq, app_id, agent_id, url, headers, body, attempts, created_at, next_attempt_at",
        )
        .bind(&self.claimer)
        .bind(until)
        .bind(now.0)
        .bind(app)
        .bind(i64::from(limit))
        .fetch_all(&mut *conn)
        .await
        .map_err(StoreError::from)
        .and_then(PendingRow::into_due);
        Unrecorded::finish_uncounted(conn, result).await
    }

    async fn next_webhook_due(&self) -> Result<Option<UnixMillis>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(CASE WHEN claimed_by IS NOT NULL AND claimed_by <> ? \
             THEN MAX(next_attempt_at, claim_until) ELSE next_attempt_at END) \
             FROM webhook_outbox AS o WHERE state = 'pending' AND NOT EXISTS \
             (SELECT 1 FROM webhook_outbox AS p WHERE p.state = 'pending' AND p.url = o.url AND \
             (p.created_at, p.seq) < (o.created_at, o.seq))",
        )
        .bind(&self.claimer)
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(UnixMillis))
    }

    async fn webhook_delivered(&self, seq: i64) -> Result<(), StoreError> {
        let mut conn = self.unrecorded.writer(&self.pool, "webhook attempt").await?;
        let result = sqlx::query("DELETE FROM webhook_outbox WHERE seq = ?")
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(StoreError::from);
        self.unrecorded.finish("webhook attempt", conn, result).await
    }

    async fn webhook_failed(&self, seq: i64, error: &str, retry_at: Option<UnixMillis>) -> Result<(), StoreError> {
        let mut conn = self.unrecorded.writer(&self.pool, "webhook attempt").await?;
        let result = sqlx::query(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, \
             state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END, \
             next_attempt_at = COALESCE(?, next_attempt_at), claimed_by = NULL, claim_until = NULL WHERE seq = ?",
        )
        .bind(error)
        .bind(retry_at.map(|t| t.0))
        .bind(retry_at.map(|t| t.0))
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(StoreError::from);
        self.unrecorded.finish("webhook attempt", conn, result).await
    }

    async fn webhook_counts(&self) -> Result<(u64, u64), StoreError> {
        let (pending, dead): (i64, i64) = sqlx::query_as(
            "SELECT COALESCE(SUM(state = 'pending'), 0), COALESCE(SUM(state = 'dead'), 0) FROM webhook_outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((pending as u64, dead as u64))
    }

    async fn reserved_webhooks(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE state = 'reserved'")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    async fn insert_template(&self, key: TemplateKey<'_>, body: &str, at: UnixMillis) -> Result<bool, StoreError> {
        let mut conn = self.unrecorded.writer(&self.pool, "template").await?;
        let result = sqlx::query(
            "INSERT OR IGNORE INTO templates (app_id, dialect, template_id, body, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(key.app.as_str())
        .bind(key.dialect)
        .bind(key.id)
        .bind(body)
        .bind(at.0)
        .bind(at.0)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(StoreError::from);
        self.unrecorded.finish("template", conn, result).await
    }

    async fn update_template(&self, key: TemplateKey<'_>, body: &str, at: UnixMillis) -> Result<bool, StoreError> {
        let mut conn = self.unrecorded.writer(&self.pool, "template").await?;
        let result = sqlx::query(
            "UPDATE templates SET body = ?, updated_at = ? WHERE app_id = ? AND dialect = ? AND template_id = ?",
        )
        .bind(body)
        .bind(at.0)
        .bind(key.app.as_str())
        .bind(key.dialect)
        .bind(key.id)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(StoreError::from);
        self.unrecorded.finish("template", conn, result).await
    }

    async fn delete_template(&self, key: TemplateKey<'_>) -> Result<bool, StoreError> {
        let mut conn = self.unrecorded.writer(&self.pool, "template").await?;
        let result = sqlx::query("DELETE FROM templates WHERE app_id = ? AND dialect = ? AND template_id = ?")
            .bind(key.app.as_str())
            .bind(key.dialect)
            .bind(key.id)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(StoreError::from);
        self.unrecorded.finish("template", conn, result).await
    }

    async fn template(&self, key: TemplateKey<'_>) -> Result<Option<Template>, StoreError> {
        let row: Option<TemplateRow> = sqlx::query_as(
            "SELECT template_id, body, created_at, updated_at FROM templates \
             WHERE app_id = ? AND dialect = ? AND template_id = ?",
        )
        .bind(key.app.as_str())
        .bind(key.dialect)
        .bind(key.id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(TemplateRow::into_template))
    }

    async fn count_templates(&self, app: &AppId, dialect: &str) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM templates WHERE app_id = ? AND dialect = ?")
            .bind(app.as_str())
            .bind(dialect)
            .fetch_one(&self.pool)
            .await?;
        Ok(n.max(0) as u64)
    }

    async fn list_templates(
        &self,
        app: &AppId,
        dialect: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Template>, StoreError> {
        let rows: Vec<TemplateRow> = sqlx::query_as(
            "SELECT template_id, body, created_at, updated_at FROM templates \
             WHERE app_id = ? AND dialect = ? AND template_id > ? ORDER BY template_id LIMIT ?",
        )
        .bind(app.as_str())
        .bind(dialect)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(TemplateRow::into_template).collect())
    }

    async fn use_nonce(
        &self,
        scope: &str,
        nonce: &str,
        now: UnixMillis,
        keep_until: UnixMillis,
    ) -> Result<bool, StoreError> {
        // On the store's write path: a failed write (a full disk) closes its connection.
        let mut conn = self.unrecorded.writer(&self.pool, "nonce").await?;
        let result = async {
            let mut tx = conn.begin().await?;
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
        self.unrecorded.finish("nonce", conn, result).await
    }
}
