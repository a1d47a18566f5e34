//! The records: a SQLite file (via sqlx) holding every agent with its configuration (secrets
//! redacted), every state change with its reason, and each agent's history and turns.
//!
//! The store is the source of truth for anything that must survive a restart. It knows SQL and the
//! model; it knows nothing of HTTP, dialects or the media path.

mod nonces;

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use colloquy_model::{
    AgentId, AgentRecord, AgentSpec, AgentState, AgentStatus, AppId, ChannelName, ExitReason, HistoryEntry, TurnDetail,
    TurnMetrics, TurnRecord, Uid, UnixMillis,
};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous};
use sqlx::{Connection, Row, Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::Notify;

/// A failure of the records. Callers treat it as an internal error: it says nothing about the request.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A live agent of the same app already has this name.
    #[error("a running agent is already named {0:?}")]
    NameTaken(String),
}

/// Which agents a list returns. Empty filters match everything.
#[derive(Clone, Debug, Default)]
pub struct AgentFilter {
    pub channel: Option<ChannelName>,
    /// Any of these statuses; empty means any status.
    pub statuses: Vec<AgentStatus>,
    /// Agents with this uid in their channel.
    pub agent_uid: Option<Uid>,
    /// Agents created at or after this time.
    pub created_from: Option<UnixMillis>,
    /// Agents created at or before this time.
    pub created_to: Option<UnixMillis>,
}

impl AgentFilter {
    /// The `WHERE` conditions after `app_id = ?`, each with `?` placeholders that [`bind`](Self::bind)
    /// fills in the same order.
    fn conditions(&self) -> String {
        let mut sql = String::new();
        if self.channel.is_some() {
            sql.push_str(" AND channel = ?");
        }
        if !self.statuses.is_empty() {
            let marks = vec!["?"; self.statuses.len()].join(", ");
            sql.push_str(&format!(" AND status IN ({marks})"));
        }
        if self.agent_uid.is_some() {
            sql.push_str(" AND json_extract(spec, '$.agent_uid') = ?");
        }
        if self.created_from.is_some() {
            sql.push_str(" AND created_at >= ?");
        }
        if self.created_to.is_some() {
            sql.push_str(" AND created_at <= ?");
        }
        sql
    }

    fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Sqlite, sqlx::sqlite::SqliteArguments> {
        if let Some(channel) = &self.channel {
            query = query.bind(channel.as_str());
        }
        for status in &self.statuses {
            query = query.bind(status.as_str());
        }
        if let Some(uid) = &self.agent_uid {
            query = query.bind(uid.as_str());
        }
        if let Some(from) = self.created_from {
            query = query.bind(from.0);
        }
        if let Some(to) = self.created_to {
            query = query.bind(to.0);
        }
        query
    }
}

/// Where a page of a list starts: after the agent with this position. Opaque to callers; the HTTP
/// layer encodes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListCursor(pub i64);

/// One page of agents, newest first.
#[derive(Debug)]
pub struct AgentPage {
    pub agents: Vec<AgentRecord>,
    /// Where the next page starts, when there is one.
    pub next: Option<ListCursor>,
}

/// A state an agent went through.
#[derive(Clone, Debug, PartialEq)]
pub struct StateChange {
    pub at: UnixMillis,
    pub state: AgentState,
}

/// How the records are opened.
#[derive(Clone, Copy, Debug, Default)]
pub struct StoreOptions {
    /// The most pages (4 KiB each) the database file may hold; a write past it fails as on a full
    /// disk (SQLITE_FULL). `None`: as large as the disk allows.
    pub max_page_count: Option<u32>,
}

/// A handle to the records; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
    /// Writes that failed since the store was opened, by what they would have recorded.
    unrecorded: Arc<Mutex<BTreeMap<&'static str, u64>>>,
    /// Woken whenever deliveries are written to the outbox.
    outbox_written: Arc<Notify>,
}

impl Store {
    /// Opens (creating when missing) the database file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default()).await
    }

    /// [`Store::open`] with options.
    pub async fn open_with(path: &Path, store_options: StoreOptions) -> Result<Store, StoreError> {
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
        Ok(Store { pool, unrecorded: Arc::default(), outbox_written: Arc::default() })
    }

    /// What could not be recorded since the store was opened: how many writes of each kind failed
    /// (`"agent"`, `"state change"`, `"history"`, `"webhook"`, …). Empty when every write worked.
    pub fn unrecorded(&self) -> BTreeMap<&'static str, u64> {
        self.unrecorded.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Notified whenever deliveries are written to the outbox (a permit is kept while nobody waits).
    pub fn outbox_written(&self) -> Arc<Notify> {
        self.outbox_written.clone()
    }

    /// A connection for one write.
    async fn writer(&self, what: &'static str) -> Result<PoolConnection<Sqlite>, StoreError> {
        match self.pool.acquire().await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                self.count_unrecorded(what);
                Err(e.into())
            }
        }
    }

    /// Ends a write on `conn`. A failed write (a full disk, an I/O error) closes its connection
    /// instead of giving it back: SQLite may have left that connection inside a transaction that
    /// holds the write lock, and every later write on any connection would then fail with
    /// "database is locked" long after the disk has room again. A fresh connection replaces it.
    async fn finish_write<T>(
        &self,
        what: &'static str,
        conn: PoolConnection<Sqlite>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &result {
            Ok(_) | Err(StoreError::NameTaken(_)) => drop(conn),
            Err(e) => {
                tracing::error!(what, error = %e, "a write to the records failed");
                self.count_unrecorded(what);
                let _ = conn.close().await;
            }
        }
        result
    }

    fn count_unrecorded(&self, what: &'static str) {
        *self.unrecorded.lock().unwrap_or_else(PoisonError::into_inner).entry(what).or_default() += 1;
    }

    /// Closes the pool, waiting for every write to finish.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Records a new agent. Fails with [`StoreError::NameTaken`] when a live agent of the same app
    /// has its name.
    pub async fn insert_agent(&self, agent: &AgentRecord) -> Result<(), StoreError> {
        self.insert_agent_with(agent, &[]).await
    }

    /// [`Store::insert_agent`], with the agent's crash ending reserved in the outbox in the same
    /// transaction (see [`Outbox::crash_ending`]).
    pub async fn insert_agent_with(
        &self,
        agent: &AgentRecord,
        crash_ending: &[OutgoingWebhook],
    ) -> Result<(), StoreError> {
        let spec = serde_json::to_string(&agent.spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (code, detail) = reason_parts(agent.state.reason());
        let mut conn = self.writer("agent").await?;
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
        self.finish_write("agent", conn, result).await
    }

    /// Moves an agent to `state` at `at`, and writes the change down. A terminal state also sets
    /// `stopped_at`.
    pub async fn set_state(&self, id: &AgentId, state: &AgentState, at: UnixMillis) -> Result<(), StoreError> {
        self.set_state_with(id, state, at, Outbox::default()).await
    }

    /// [`Store::set_state`] and the change's webhooks, in one transaction: either the state and its
    /// deliveries are recorded, or neither is. A terminal state also drops the agent's reserved
    /// crash ending, as its real ending is recorded instead.
    pub async fn set_state_with(
        &self,
        id: &AgentId,
        state: &AgentState,
        at: UnixMillis,
        outbox: Outbox<'_>,
    ) -> Result<(), StoreError> {
        let (code, detail) = reason_parts(state.reason());
        let terminal = state.status().is_terminal();
        let stopped_at = terminal.then_some(at.0);
        let mut conn = self.writer("state change").await?;
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
        let result = self.finish_write("state change", conn, result).await;
        if result.is_ok() && !outbox.deliver.is_empty() {
            self.outbox_written.notify_one();
        }
        result
    }

    /// Replaces an agent's recorded configuration (after a mid-call update).
    pub async fn set_spec(&self, id: &AgentId, spec: &AgentSpec) -> Result<(), StoreError> {
        let spec = serde_json::to_string(spec).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.writer("configuration").await?;
        let result = sqlx::query("UPDATE agents SET spec = ? WHERE id = ?")
            .bind(spec)
            .bind(id.as_str())
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(StoreError::from);
        self.finish_write("configuration", conn, result).await
    }

    /// The agent `id` of `app`, or `None` when there is none (or it belongs to another app).
    pub async fn agent(&self, app: &AppId, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        let row = sqlx::query("SELECT * FROM agents WHERE id = ? AND app_id = ?")
            .bind(id.as_str())
            .bind(app.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.map(|row| agent_from_row(&row)).transpose()
    }

    /// A page of `app`'s agents matching `filter`, newest first, at most `limit` long.
    pub async fn list_agents(
        &self,
        app: &AppId,
        filter: &AgentFilter,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<AgentPage, StoreError> {
        let mut sql = format!("SELECT * FROM agents WHERE app_id = ?{}", filter.conditions());
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
        let more = rows.len() > limit as usize;
        let rows = &rows[..rows.len().min(limit as usize)];
        let next = match rows.last() {
            Some(last) if more => Some(ListCursor(last.try_get("seq")?)),
            _ => None,
        };
        let agents = rows.iter().map(agent_from_row).collect::<Result<_, _>>()?;
        Ok(AgentPage { agents, next })
    }

    /// How many of `app`'s agents match `filter`.
    pub async fn count_agents(&self, app: &AppId, filter: &AgentFilter) -> Result<u64, StoreError> {
        let sql = format!("SELECT COUNT(*) AS n FROM agents WHERE app_id = ?{}", filter.conditions());
        // Built only from constant fragments and `?` placeholders: every value is bound.
        let row = filter.bind(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(app.as_str())).fetch_one(&self.pool).await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }

    /// Every state the agent went through, oldest first.
    pub async fn state_changes(&self, id: &AgentId) -> Result<Vec<StateChange>, StoreError> {
        let rows = sqlx::query(
            "SELECT at, status, reason_code, reason_detail FROM agent_state_changes WHERE agent_id = ? ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok(StateChange { at: UnixMillis(row.try_get("at")?), state: state_from_row(row)? }))
            .collect()
    }

    /// Marks every agent that was live when the process died FAILED with reason "node restarted",
    /// and releases their reserved crash endings to the outbox, in one transaction. Called once at
    /// start-up, before any agent starts. Returns the agents it marked.
    pub async fn fail_orphans(&self, at: UnixMillis) -> Result<Vec<AgentId>, StoreError> {
        let state = AgentState::exited(ExitReason::NodeRestarted);
        let mut conn = self.writer("state change").await?;
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
        let result = self.finish_write("state change", conn, result).await;
        if matches!(&result, Ok(ids) if !ids.is_empty()) {
            self.outbox_written.notify_one();
        }
        result
    }

    /// Appends one message to an agent's history.
    pub async fn append_history(&self, id: &AgentId, entry: &HistoryEntry) -> Result<(), StoreError> {
        let mut conn = self.writer("history").await?;
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
        self.finish_write("history", conn, result).await
    }

    /// An agent's history, oldest first.
    pub async fn history(&self, id: &AgentId) -> Result<Vec<HistoryEntry>, StoreError> {
        let rows = sqlx::query(
            "SELECT turn_id, speaker, content, interrupted, at FROM history WHERE agent_id = ? ORDER BY seq",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let speaker: String = row.try_get("speaker")?;
                Ok(HistoryEntry {
                    turn_id: row.try_get::<i64, _>("turn_id")? as u64,
                    speaker: from_json_str(&speaker)?,
                    content: row.try_get("content")?,
                    interrupted: row.try_get("interrupted")?,
                    at: UnixMillis(row.try_get("at")?),
                })
            })
            .collect()
    }

    /// Records a finished turn (or replaces the record of a turn with the same id).
    pub async fn record_turn(&self, id: &AgentId, turn: &TurnRecord) -> Result<(), StoreError> {
        let metrics = serde_json::to_string(&turn.metrics).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let detail = serde_json::to_string(&turn.detail).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.writer("turn").await?;
        let result = sqlx::query(
            "INSERT OR REPLACE INTO turns \
             (agent_id, turn_id, start_kind, end_kind, started_at, ended_at, metrics, detail) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(id.as_str())
        .bind(turn.turn_id as i64)
        .bind(to_json_str(&turn.start))
        .bind(to_json_str(&turn.end))
        .bind(turn.started_at.0)
        .bind(turn.ended_at.0)
        .bind(metrics)
        .bind(detail)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(StoreError::from);
        self.finish_write("turn", conn, result).await
    }

    /// An agent's turns, in order.
    pub async fn turns(&self, id: &AgentId) -> Result<Vec<TurnRecord>, StoreError> {
        let rows = sqlx::query(
            "SELECT turn_id, start_kind, end_kind, started_at, ended_at, metrics, detail FROM turns \
             WHERE agent_id = ? ORDER BY turn_id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let start: String = row.try_get("start_kind")?;
                let end: String = row.try_get("end_kind")?;
                let metrics: String = row.try_get("metrics")?;
                let detail: Option<String> = row.try_get("detail")?;
                let detail = match detail {
                    Some(detail) => serde_json::from_str::<TurnDetail>(&detail)
                        .map_err(|e| StoreError::Corrupt(format!("turn detail: {e}")))?,
                    None => TurnDetail::default(),
                };
                Ok(TurnRecord {
                    turn_id: row.try_get::<i64, _>("turn_id")? as u64,
                    start: from_json_str(&start)?,
                    end: from_json_str(&end)?,
                    started_at: UnixMillis(row.try_get("started_at")?),
                    ended_at: UnixMillis(row.try_get("ended_at")?),
                    metrics: serde_json::from_str::<TurnMetrics>(&metrics)
                        .map_err(|e| StoreError::Corrupt(format!("turn metrics: {e}")))?,
                    detail,
                })
            })
            .collect()
    }
}

/// Writes one delivery in `state` ('pending', due at once, or 'reserved').
async fn insert_webhook(tx: &mut SqliteConnection, webhook: &OutgoingWebhook, state: &str) -> Result<(), StoreError> {
    let headers = serde_json::to_string(&webhook.headers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    sqlx::query(
        "INSERT INTO webhook_outbox (agent_id, app_id, url, headers, body, state, next_attempt_at, created_at) \
         VALUES (?, COALESCE((SELECT app_id FROM agents WHERE id = ?), ''), ?, ?, ?, ?, ?, ?)",
    )
    .bind(webhook.agent_id.as_str())
    .bind(webhook.agent_id.as_str())
    .bind(&webhook.url)
    .bind(headers)
    .bind(&webhook.body)
    .bind(state)
    .bind(webhook.created_at.0)
    .bind(webhook.created_at.0)
    .execute(tx)
    .await?;
    Ok(())
}

async fn insert_state_change(
    tx: &mut sqlx::SqliteConnection,
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

fn reason_parts(reason: Option<&ExitReason>) -> (Option<&'static str>, Option<&str>) {
    (reason.map(ExitReason::code), reason.and_then(ExitReason::detail))
}

fn state_from_row(row: &SqliteRow) -> Result<AgentState, StoreError> {
    let status: String = row.try_get("status")?;
    let status = AgentStatus::from_str(&status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let code: Option<String> = row.try_get("reason_code")?;
    let detail: Option<String> = row.try_get("reason_detail")?;
    let reason = match code {
        Some(code) => Some(
            ExitReason::from_parts(&code, detail)
                .ok_or_else(|| StoreError::Corrupt(format!("reason code {code:?}")))?,
        ),
        None => None,
    };
    AgentState::from_parts(status, reason).ok_or_else(|| StoreError::Corrupt(format!("state {status} and its reason")))
}

fn agent_from_row(row: &SqliteRow) -> Result<AgentRecord, StoreError> {
    let spec: String = row.try_get("spec")?;
    let app: String = row.try_get("app_id")?;
    Ok(AgentRecord {
        id: AgentId::from_string(row.try_get("id")?),
        app: AppId::new(app).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        spec: serde_json::from_str(&spec).map_err(|e| StoreError::Corrupt(format!("agent spec: {e}")))?,
        state: state_from_row(row)?,
        created_at: UnixMillis(row.try_get("created_at")?),
        stopped_at: row.try_get::<Option<i64>, _>("stopped_at")?.map(UnixMillis),
    })
}

/// The snake_case name serde gives a unit variant (`voice_input`, `ok`, …), for columns that hold one.
fn to_json_str<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("unit enum variants serialize as strings, got {other:?}"),
    }
}

fn from_json_str<T: serde::de::DeserializeOwned>(value: &str) -> Result<T, StoreError> {
    serde_json::from_value(serde_json::Value::String(value.to_owned()))
        .map_err(|e| StoreError::Corrupt(format!("{value:?}: {e}")))
}

/// A webhook delivery, formatted and signed by the dialect that owns it.
#[derive(Clone, Debug, PartialEq)]
pub struct OutgoingWebhook {
    pub agent_id: AgentId,
    pub url: String,
    /// Header names and values, as the dialect wants them sent.
    pub headers: Vec<(String, String)>,
    pub body: String,
    pub created_at: UnixMillis,
}

/// The webhooks that go with a state change, written in its transaction.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outbox<'a> {
    /// Deliveries due at once (the change's own event: started, stopped, failed).
    pub deliver: &'a [OutgoingWebhook],
    /// The agent's ending as it would read if the node died now, replacing the one reserved
    /// before. It is never due while the agent lives: its real ending deletes it, and the next start
    /// after a crash releases it ([`Store::fail_orphans`]). Ignored for a terminal state.
    pub crash_ending: Option<&'a [OutgoingWebhook]>,
}

/// A pending delivery read back from the outbox.
#[derive(Clone, Debug, PartialEq)]
pub struct PendingWebhook {
    pub seq: i64,
    /// The app of the agent it is about (empty when the agent is unknown).
    pub app: String,
    pub webhook: OutgoingWebhook,
    /// Attempts made so far.
    pub attempts: u32,
}

impl Store {
    /// Queues a delivery, unless `max_pending` deliveries already wait; answers whether it queued.
    pub async fn enqueue_webhook(&self, webhook: &OutgoingWebhook, max_pending: u32) -> Result<bool, StoreError> {
        let headers = serde_json::to_string(&webhook.headers).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut conn = self.writer("webhook").await?;
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
        let result = self.finish_write("webhook", conn, result).await;
        if matches!(result, Ok(true)) {
            self.outbox_written.notify_one();
        }
        result
    }

    /// The apps with deliveries due at `now`.
    pub async fn apps_with_due_webhooks(&self, now: UnixMillis) -> Result<Vec<String>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT DISTINCT app_id FROM webhook_outbox WHERE state = 'pending' AND next_attempt_at <= ?",
        )
        .bind(now.0)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Up to `limit` of `app`'s pending deliveries due at `now`, oldest first. Deliveries to one URL
    /// go in order: only the oldest pending one of each URL is ever due, the others wait behind it.
    /// "Oldest" is by the time of the event (then by when it was written): a conversation event
    /// queued after its agent's ending, which the session wrote first, still goes before it.
    pub async fn due_webhooks_of_app(
        &self,
        app: &str,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<PendingWebhook>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, app_id, agent_id, url, headers, body, attempts, created_at FROM webhook_outbox AS o \
             WHERE state = 'pending' AND app_id = ? AND next_attempt_at <= ? AND NOT EXISTS \
             (SELECT 1 FROM webhook_outbox AS p WHERE p.state = 'pending' AND p.url = o.url AND \
             (p.created_at, p.seq) < (o.created_at, o.seq)) ORDER BY next_attempt_at, seq LIMIT ?",
        )
        .bind(app)
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_from_row).collect()
    }

    /// Up to `limit` pending deliveries due at `now` of every app, oldest first, first in line for
    /// their URL.
    pub async fn due_webhooks(&self, now: UnixMillis, limit: u32) -> Result<Vec<PendingWebhook>, StoreError> {
        let rows = sqlx::query(
            "SELECT seq, app_id, agent_id, url, headers, body, attempts, created_at FROM webhook_outbox AS o \
             WHERE state = 'pending' AND next_attempt_at <= ? AND NOT EXISTS (SELECT 1 FROM webhook_outbox AS p \
             WHERE p.state = 'pending' AND p.url = o.url AND (p.created_at, p.seq) < (o.created_at, o.seq)) \
             ORDER BY next_attempt_at, seq LIMIT ?",
        )
        .bind(now.0)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(pending_from_row).collect()
    }

    /// When the next pending delivery is due (among those first in line for their URL), if any.
    pub async fn next_webhook_due(&self) -> Result<Option<UnixMillis>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM webhook_outbox AS o WHERE state = 'pending' AND NOT EXISTS \
             (SELECT 1 FROM webhook_outbox AS p WHERE p.state = 'pending' AND p.url = o.url AND \
             (p.created_at, p.seq) < (o.created_at, o.seq))",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(next.map(UnixMillis))
    }

    /// A delivery succeeded: it leaves the outbox.
    pub async fn webhook_delivered(&self, seq: i64) -> Result<(), StoreError> {
        let mut conn = self.writer("webhook attempt").await?;
        let result = sqlx::query("DELETE FROM webhook_outbox WHERE seq = ?")
            .bind(seq)
            .execute(&mut *conn)
            .await
            .map(drop)
            .map_err(StoreError::from);
        self.finish_write("webhook attempt", conn, result).await
    }

    /// A delivery failed: try again at `retry_at`, or, when that is `None`, give up and keep the row
    /// as dead.
    pub async fn webhook_failed(&self, seq: i64, error: &str, retry_at: Option<UnixMillis>) -> Result<(), StoreError> {
        let mut conn = self.writer("webhook attempt").await?;
        let result = sqlx::query(
            "UPDATE webhook_outbox SET attempts = attempts + 1, last_error = ?, \
             state = CASE WHEN ? IS NULL THEN 'dead' ELSE 'pending' END, \
             next_attempt_at = COALESCE(?, next_attempt_at) WHERE seq = ?",
        )
        .bind(error)
        .bind(retry_at.map(|t| t.0))
        .bind(retry_at.map(|t| t.0))
        .bind(seq)
        .execute(&mut *conn)
        .await
        .map(drop)
        .map_err(StoreError::from);
        self.finish_write("webhook attempt", conn, result).await
    }

    /// How many deliveries wait, and how many were given up. Reserved crash endings are neither.
    pub async fn webhook_counts(&self) -> Result<(u64, u64), StoreError> {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(state = 'pending'), 0) AS pending, COALESCE(SUM(state = 'dead'), 0) AS dead \
             FROM webhook_outbox",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok((row.try_get::<i64, _>("pending")? as u64, row.try_get::<i64, _>("dead")? as u64))
    }

    /// How many crash endings are reserved for live agents.
    pub async fn reserved_webhooks(&self) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM webhook_outbox WHERE state = 'reserved'")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }
}

fn pending_from_row(row: &SqliteRow) -> Result<PendingWebhook, StoreError> {
    let headers: String = row.try_get("headers")?;
    Ok(PendingWebhook {
        seq: row.try_get("seq")?,
        app: row.try_get("app_id")?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        webhook: OutgoingWebhook {
            agent_id: AgentId::from_string(row.try_get("agent_id")?),
            url: row.try_get("url")?,
            headers: serde_json::from_str(&headers)
                .map_err(|e| StoreError::Corrupt(format!("webhook headers: {e}")))?,
            body: row.try_get("body")?,
            created_at: UnixMillis(row.try_get("created_at")?),
        },
    })
}

/// A saved agent configuration of one app and dialect.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub id: String,
    /// The dialect's JSON, as it was saved.
    pub body: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl Store {
    /// Saves a new template; answers `false` (and changes nothing) when the id is taken.
    pub async fn insert_template(
        &self,
        app: &AppId,
        dialect: &str,
        id: &str,
        body: &str,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer("template").await?;
        let result = sqlx::query(
            "INSERT OR IGNORE INTO templates (app_id, dialect, template_id, body, created_at, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(app.as_str())
        .bind(dialect)
        .bind(id)
        .bind(body)
        .bind(at.0)
        .bind(at.0)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(StoreError::from);
        self.finish_write("template", conn, result).await
    }

    /// Replaces a template's body; answers `false` when there is no such template.
    pub async fn update_template(
        &self,
        app: &AppId,
        dialect: &str,
        id: &str,
        body: &str,
        at: UnixMillis,
    ) -> Result<bool, StoreError> {
        let mut conn = self.writer("template").await?;
        let result = sqlx::query(
            "UPDATE templates SET body = ?, updated_at = ? WHERE app_id = ? AND dialect = ? AND template_id = ?",
        )
        .bind(body)
        .bind(at.0)
        .bind(app.as_str())
        .bind(dialect)
        .bind(id)
        .execute(&mut *conn)
        .await
        .map(|done| done.rows_affected() == 1)
        .map_err(StoreError::from);
        self.finish_write("template", conn, result).await
    }

    /// Deletes a template; answers whether there was one.
    pub async fn delete_template(&self, app: &AppId, dialect: &str, id: &str) -> Result<bool, StoreError> {
        let mut conn = self.writer("template").await?;
        let result = sqlx::query("DELETE FROM templates WHERE app_id = ? AND dialect = ? AND template_id = ?")
            .bind(app.as_str())
            .bind(dialect)
            .bind(id)
            .execute(&mut *conn)
            .await
            .map(|done| done.rows_affected() == 1)
            .map_err(StoreError::from);
        self.finish_write("template", conn, result).await
    }

    pub async fn template(&self, app: &AppId, dialect: &str, id: &str) -> Result<Option<Template>, StoreError> {
        let row = sqlx::query(
            "SELECT template_id, body, created_at, updated_at FROM templates \
             WHERE app_id = ? AND dialect = ? AND template_id = ?",
        )
        .bind(app.as_str())
        .bind(dialect)
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(template_from_row).transpose()
    }

    /// How many templates `app` keeps under `dialect`.
    pub async fn count_templates(&self, app: &AppId, dialect: &str) -> Result<u64, StoreError> {
        let row = sqlx::query("SELECT COUNT(*) AS n FROM templates WHERE app_id = ? AND dialect = ?")
            .bind(app.as_str())
            .bind(dialect)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>("n")?.max(0) as u64)
    }

    /// Up to `limit` templates ordered by id, after the id `after` when given (a cursor).
    pub async fn list_templates(
        &self,
        app: &AppId,
        dialect: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Template>, StoreError> {
        let rows = sqlx::query(
            "SELECT template_id, body, created_at, updated_at FROM templates \
             WHERE app_id = ? AND dialect = ? AND template_id > ? ORDER BY template_id LIMIT ?",
        )
        .bind(app.as_str())
        .bind(dialect)
        .bind(after.unwrap_or(""))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(template_from_row).collect()
    }
}

fn template_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Template, StoreError> {
    Ok(Template {
        id: row.try_get("template_id")?,
        body: row.try_get("body")?,
        created_at: UnixMillis(row.try_get("created_at")?),
        updated_at: UnixMillis(row.try_get("updated_at")?),
    })
}
