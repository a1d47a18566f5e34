//! The records: every agent with its configuration (secrets redacted), every state change with its
//! reason, each agent's history and turns, the webhook outbox, the dialects' templates and the
//! used request nonces.
//!
//! [`Store`] is one handle whatever holds the records: a SQLite file (`sqlite.rs`, the embedded
//! default) or a PostgreSQL database that several nodes share (`postgres.rs`). Both engines
//! implement [`Records`]; `Store` holds one of them in a closed enum and hands every call to it, so
//! a method without its twin in either engine does not compile.
//!
//! The store is the source of truth for anything that must survive a restart. It knows SQL and the
//! model; it knows nothing of HTTP, dialects or the media path.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use colloquy_model::{
    AgentId, AgentRecord, AgentSpec, AgentState, AgentStatus, AppId, ChannelName, HistoryEntry, TurnRecord, Uid,
    UnixMillis,
};
use sqlx::pool::PoolConnection;
use tokio::sync::Notify;

/// How long a node holds the outbox rows it took for delivery before another node may take them:
/// longer than any attempt (a connect and a request timeout, 13 s by default), so a row is given to
/// another node only when its holder died (or lost the records) in the middle.
pub const WEBHOOK_CLAIM: Duration = Duration::from_secs(60);

/// A handle to the records; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    engine: Engine,
    /// Writes that failed since the store was opened, by what they would have recorded.
    unrecorded: Unrecorded,
    /// Woken whenever deliveries are written to the outbox.
    outbox_written: Arc<Notify>,
}

/// Where the records are. A closed set: each engine is a concrete type, so calls are dispatched
/// statically (no boxed futures) and every engine is seen by the compiler at every call.
#[derive(Clone, Debug)]
enum Engine {
    Sqlite(sqlite::SqliteRecords),
    Postgres(postgres::PostgresRecords),
}

/// Runs `$call` on the engine behind `$store`, bound to `$records`.
macro_rules! on_engine {
    ($store:expr, $records:ident => $call:expr) => {
        match &$store.engine {
            Engine::Sqlite($records) => $call,
            Engine::Postgres($records) => $call,
        }
    };
}

mod nonces;
mod postgres;
mod rows;
mod sqlite;

/// What each engine does. One method per [`Store`] method that reaches the records.
pub(crate) trait Records {
    async fn close(&self);
    async fn insert_agent(&self, agent: &AgentRecord, crash_ending: &[OutgoingWebhook]) -> Result<(), StoreError>;
    async fn set_state(
        &self,
        id: &AgentId,
        state: &AgentState,
        at: UnixMillis,
        outbox: Outbox<'_>,
    ) -> Result<(), StoreError>;
    async fn set_spec(&self, id: &AgentId, spec: &AgentSpec) -> Result<(), StoreError>;
    async fn agent(&self, app: &AppId, id: &AgentId) -> Result<Option<AgentRecord>, StoreError>;
    async fn list_agents(
        &self,
        app: &AppId,
        filter: &AgentFilter,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<AgentPage, StoreError>;
    async fn count_agents(&self, app: &AppId, filter: &AgentFilter) -> Result<u64, StoreError>;
    async fn state_changes(&self, id: &AgentId) -> Result<Vec<StateChange>, StoreError>;
    async fn fail_orphans(&self, at: UnixMillis) -> Result<Vec<AgentId>, StoreError>;
    async fn append_history(&self, id: &AgentId, entry: &HistoryEntry) -> Result<(), StoreError>;
    async fn history(&self, id: &AgentId) -> Result<Vec<HistoryEntry>, StoreError>;
    async fn record_turn(&self, id: &AgentId, turn: &TurnRecord) -> Result<(), StoreError>;
    async fn turns(&self, id: &AgentId) -> Result<Vec<TurnRecord>, StoreError>;
    async fn enqueue_webhook(&self, webhook: &OutgoingWebhook, max_pending: u32) -> Result<bool, StoreError>;
    async fn apps_with_due_webhooks(&self, now: UnixMillis) -> Result<Vec<String>, StoreError>;
    /// Takes up to `limit` due deliveries (of `app`, or of every app) for this store until
    /// `now + WEBHOOK_CLAIM`, in the order they are due.
    async fn claim_due_webhooks(
        &self,
        app: Option<&str>,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<PendingWebhook>, StoreError>;
    async fn next_webhook_due(&self) -> Result<Option<UnixMillis>, StoreError>;
    async fn webhook_delivered(&self, seq: i64) -> Result<(), StoreError>;
    async fn webhook_failed(&self, seq: i64, error: &str, retry_at: Option<UnixMillis>) -> Result<(), StoreError>;
    async fn webhook_counts(&self) -> Result<(u64, u64), StoreError>;
    async fn reserved_webhooks(&self) -> Result<u64, StoreError>;
    async fn insert_template(&self, key: TemplateKey<'_>, body: &str, at: UnixMillis) -> Result<bool, StoreError>;
    async fn update_template(&self, key: TemplateKey<'_>, body: &str, at: UnixMillis) -> Result<bool, StoreError>;
    async fn delete_template(&self, key: TemplateKey<'_>) -> Result<bool, StoreError>;
    async fn template(&self, key: TemplateKey<'_>) -> Result<Option<Template>, StoreError>;
    async fn count_templates(&self, app: &AppId, dialect: &str) -> Result<u64, StoreError>;
    async fn list_templates(
        &self,
        app: &AppId,
        dialect: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Template>, StoreError>;
    async fn use_nonce(
        &self,
        scope: &str,
        nonce: &str,
        now: UnixMillis,
        keep_until: UnixMillis,
    ) -> Result<bool, StoreError>;
}

/// One template's key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TemplateKey<'a> {
    pub app: &'a AppId,
    pub dialect: &'a str,
    pub id: &'a str,
}

/// The count of failed writes by kind, shared by a store's clones, and the write discipline both
/// engines follow.
#[derive(Clone, Debug, Default)]
pub(crate) struct Unrecorded(Arc<Mutex<BTreeMap<&'static str, u64>>>);

impl Unrecorded {
    fn count(&self, what: &'static str) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner).entry(what).or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<&'static str, u64> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// A connection for one write; failing to get one counts as a failed write.
    pub(crate) async fn writer<DB: sqlx::Database>(
        &self,
        pool: &sqlx::Pool<DB>,
        what: &'static str,
    ) -> Result<PoolConnection<DB>, StoreError> {
        match pool.acquire().await {
            Ok(conn) => Ok(conn),
            Err(e) => {
                self.count(what);
                Err(e.into())
            }
        }
    }

    /// Ends a write on `conn`. A failed write (a full disk, an I/O error, a lost server) closes its
    /// connection instead of giving it back: SQLite may have left that connection inside a
    /// transaction that holds the write lock, and every later write on any connection would then
    /// fail with "database is locked" long after the disk has room again; a PostgreSQL connection
    /// that failed may be broken. A fresh connection replaces it.
    pub(crate) async fn finish<DB: sqlx::Database, T>(
        &self,
        what: &'static str,
        conn: PoolConnection<DB>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        match &result {
            Ok(_) | Err(StoreError::NameTaken(_)) => drop(conn),
            Err(e) => {
                tracing::error!(what, error = %e, "a write to the records failed");
                self.count(what);
                let _ = conn.close().await;
            }
        }
        result
    }

    /// [`finish`](Self::finish) for a write that records nothing the caller was told of (a
    /// delivery's claim): a failure closes the connection but is not counted.
    pub(crate) async fn finish_uncounted<DB: sqlx::Database, T>(
        conn: PoolConnection<DB>,
        result: Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        if result.is_err() {
            let _ = conn.close().await;
        }
        result
    }
}

impl Store {
    /// Opens (creating when missing) the SQLite file at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Store, StoreError> {
        Store::open_with(path, StoreOptions::default()).await
    }

    /// [`Store::open`] with options.
    pub async fn open_with(path: &Path, store_options: StoreOptions) -> Result<Store, StoreError> {
        let unrecorded = Unrecorded::default();
        let engine = Engine::Sqlite(sqlite::SqliteRecords::open(path, store_options, unrecorded.clone()).await?);
        Ok(Store { engine, unrecorded, outbox_written: Arc::default() })
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/database`)
    /// and brings its schema up to date. Several nodes may share one database.
    pub async fn open_postgres(url: &str) -> Result<Store, StoreError> {
        let unrecorded = Unrecorded::default();
        let engine = Engine::Postgres(postgres::PostgresRecords::open(url, unrecorded.clone()).await?);
        Ok(Store { engine, unrecorded, outbox_written: Arc::default() })
    }

    /// Which engine holds the records: `"sqlite"` or `"postgres"`.
    pub fn engine(&self) -> &'static str {
        match self.engine {
            Engine::Sqlite(_) => "sqlite",
            Engine::Postgres(_) => "postgres",
        }
    }

    /// What could not be recorded since the store was opened: how many writes of each kind failed
    /// (`"agent"`, `"state change"`, `"history"`, `"webhook"`, …). Empty when every write worked.
    pub fn unrecorded(&self) -> BTreeMap<&'static str, u64> {
        self.unrecorded.snapshot()
    }

    /// Notified whenever deliveries are written to the outbox (a permit is kept while nobody waits).
    pub fn outbox_written(&self) -> Arc<Notify> {
        self.outbox_written.clone()
    }

    /// Closes the pool, waiting for every write to finish.
    pub async fn close(&self) {
        on_engine!(self, records => records.close().await)
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
        on_engine!(self, records => records.insert_agent(agent, crash_ending).await)
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
        let result = on_engine!(self, records => records.set_state(id, state, at, outbox).await);
        if result.is_ok() && !outbox.deliver.is_empty() {
            self.outbox_written.notify_one();
        }
        result
    }

    /// Replaces an agent's recorded configuration (after a mid-call update).
    pub async fn set_spec(&self, id: &AgentId, spec: &AgentSpec) -> Result<(), StoreError> {
        on_engine!(self, records => records.set_spec(id, spec).await)
    }

    /// The agent `id` of `app`, or `None` when there is none (or it belongs to another app).
    pub async fn agent(&self, app: &AppId, id: &AgentId) -> Result<Option<AgentRecord>, StoreError> {
        on_engine!(self, records => records.agent(app, id).await)
    }

    /// A page of `app`'s agents matching `filter`, newest first, at most `limit` long.
    pub async fn list_agents(
        &self,
        app: &AppId,
        filter: &AgentFilter,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<AgentPage, StoreError> {
        on_engine!(self, records => records.list_agents(app, filter, after, limit).await)
    }

    /// How many of `app`'s agents match `filter`.
    pub async fn count_agents(&self, app: &AppId, filter: &AgentFilter) -> Result<u64, StoreError> {
        on_engine!(self, records => records.count_agents(app, filter).await)
    }

    /// Every state the agent went through, oldest first.
    pub async fn state_changes(&self, id: &AgentId) -> Result<Vec<StateChange>, StoreError> {
        on_engine!(self, records => records.state_changes(id).await)
    }

    /// Marks every agent that was live when the process died FAILED with reason "node restarted",
    /// and releases their reserved crash endings to the outbox, in one transaction. Called once at
    /// start-up, before any agent starts. Returns the agents it marked.
    pub async fn fail_orphans(&self, at: UnixMillis) -> Result<Vec<AgentId>, StoreError> {
        let result = on_engine!(self, records => records.fail_orphans(at).await);
        if matches!(&result, Ok(ids) if !ids.is_empty()) {
            self.outbox_written.notify_one();
        }
        result
    }

    /// Appends one message to an agent's history.
    pub async fn append_history(&self, id: &AgentId, entry: &HistoryEntry) -> Result<(), StoreError> {
        on_engine!(self, records => records.append_history(id, entry).await)
    }

    /// An agent's history, oldest first.
    pub async fn history(&self, id: &AgentId) -> Result<Vec<HistoryEntry>, StoreError> {
        on_engine!(self, records => records.history(id).await)
    }

    /// Records a finished turn (or replaces the record of a turn with the same id).
    pub async fn record_turn(&self, id: &AgentId, turn: &TurnRecord) -> Result<(), StoreError> {
        on_engine!(self, records => records.record_turn(id, turn).await)
    }

    /// An agent's turns, in order.
    pub async fn turns(&self, id: &AgentId) -> Result<Vec<TurnRecord>, StoreError> {
        on_engine!(self, records => records.turns(id).await)
    }
}

impl Store {
    /// Queues a delivery, unless `max_pending` deliveries already wait; answers whether it queued.
    pub async fn enqueue_webhook(&self, webhook: &OutgoingWebhook, max_pending: u32) -> Result<bool, StoreError> {
        let result = on_engine!(self, records => records.enqueue_webhook(webhook, max_pending).await);
        if matches!(result, Ok(true)) {
            self.outbox_written.notify_one();
        }
        result
    }

    /// The apps with deliveries due at `now` that no other store holds.
    pub async fn apps_with_due_webhooks(&self, now: UnixMillis) -> Result<Vec<String>, StoreError> {
        on_engine!(self, records => records.apps_with_due_webhooks(now).await)
    }

    /// Up to `limit` of `app`'s pending deliveries due at `now`, oldest first, taken for this store.
    /// Deliveries to one URL go in order: only the oldest pending one of each URL is ever due, the
    /// others wait behind it, whichever store holds it. "Oldest" is by the time of the event (then
    /// by when it was written): a conversation event queued after its agent's ending, which the
    /// session wrote first, still goes before it.
    ///
    /// The rows answered are claimed for this store until `now` + [`WEBHOOK_CLAIM`] (asking again
    /// renews the claim), so another store on the same database (another node) does not deliver
    /// them too; [`webhook_delivered`](Self::webhook_delivered) and
    /// [`webhook_failed`](Self::webhook_failed) end the claim. Rows held by a store that died are
    /// taken by another once its claim runs out.
    pub async fn due_webhooks_of_app(
        &self,
        app: &str,
        now: UnixMillis,
        limit: u32,
    ) -> Result<Vec<PendingWebhook>, StoreError> {
        on_engine!(self, records => records.claim_due_webhooks(Some(app), now, limit).await)
    }

    /// Up to `limit` pending deliveries due at `now` of every app, oldest first, first in line for
    /// their URL, claimed for this store as [`due_webhooks_of_app`](Self::due_webhooks_of_app) does.
    pub async fn due_webhooks(&self, now: UnixMillis, limit: u32) -> Result<Vec<PendingWebhook>, StoreError> {
        on_engine!(self, records => records.claim_due_webhooks(None, now, limit).await)
    }

    /// When the next pending delivery is due (among those first in line for their URL), if any; a
    /// row another store holds is due for this one when that store's claim runs out.
    pub async fn next_webhook_due(&self) -> Result<Option<UnixMillis>, StoreError> {
        on_engine!(self, records => records.next_webhook_due().await)
    }

    /// A delivery succeeded: it leaves the outbox.
    pub async fn webhook_delivered(&self, seq: i64) -> Result<(), StoreError> {
        on_engine!(self, records => records.webhook_delivered(seq).await)
    }

    /// A delivery failed: try again at `retry_at` (any store may take it then), or, when that is
    /// `None`, give up and keep the row as dead.
    pub async fn webhook_failed(&self, seq: i64, error: &str, retry_at: Option<UnixMillis>) -> Result<(), StoreError> {
        on_engine!(self, records => records.webhook_failed(seq, error, retry_at).await)
    }

    /// How many deliveries wait, and how many were given up. Reserved crash endings are neither.
    pub async fn webhook_counts(&self) -> Result<(u64, u64), StoreError> {
        on_engine!(self, records => records.webhook_counts().await)
    }

    /// How many crash endings are reserved for live agents.
    pub async fn reserved_webhooks(&self) -> Result<u64, StoreError> {
        on_engine!(self, records => records.reserved_webhooks().await)
    }
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
        let key = TemplateKey { app, dialect, id };
        on_engine!(self, records => records.insert_template(key, body, at).await)
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
        let key = TemplateKey { app, dialect, id };
        on_engine!(self, records => records.update_template(key, body, at).await)
    }

    /// Deletes a template; answers whether there was one.
    pub async fn delete_template(&self, app: &AppId, dialect: &str, id: &str) -> Result<bool, StoreError> {
        let key = TemplateKey { app, dialect, id };
        on_engine!(self, records => records.delete_template(key).await)
    }

    pub async fn template(&self, app: &AppId, dialect: &str, id: &str) -> Result<Option<Template>, StoreError> {
        let key = TemplateKey { app, dialect, id };
        on_engine!(self, records => records.template(key).await)
    }

    /// How many templates `app` keeps under `dialect`.
    pub async fn count_templates(&self, app: &AppId, dialect: &str) -> Result<u64, StoreError> {
        on_engine!(self, records => records.count_templates(app, dialect).await)
    }

    /// Up to `limit` templates ordered by id, after the id `after` when given (a cursor).
    pub async fn list_templates(
        &self,
        app: &AppId,
        dialect: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Template>, StoreError> {
        on_engine!(self, records => records.list_templates(app, dialect, after, limit).await)
    }
}

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
    /// The `WHERE` conditions after `app_id = <first placeholder>`, in `flavor`'s SQL, each with a
    /// placeholder (numbered from `next` for PostgreSQL) that [`bind`](Self::bind) fills in the
    /// same order.
    pub(crate) fn conditions(&self, flavor: SqlFlavor, mut next: usize) -> String {
        let mut mark = || {
            next += 1;
            match flavor {
                SqlFlavor::Sqlite => "?".to_owned(),
                SqlFlavor::Postgres => format!("${}", next - 1),
            }
        };
        let mut sql = String::new();
        if self.channel.is_some() {
            sql.push_str(&format!(" AND channel = {}", mark()));
        }
        if !self.statuses.is_empty() {
            let marks: Vec<String> = self.statuses.iter().map(|_| mark()).collect();
            sql.push_str(&format!(" AND status IN ({})", marks.join(", ")));
        }
        if self.agent_uid.is_some() {
            let uid = match flavor {
                SqlFlavor::Sqlite => "json_extract(spec, '$.agent_uid')",
                SqlFlavor::Postgres => "(spec::jsonb ->> 'agent_uid')",
            };
            sql.push_str(&format!(" AND {uid} = {}", mark()));
        }
        if self.created_from.is_some() {
            sql.push_str(&format!(" AND created_at >= {}", mark()));
        }
        if self.created_to.is_some() {
            sql.push_str(&format!(" AND created_at <= {}", mark()));
        }
        sql
    }

    pub(crate) fn bind<'q, DB: sqlx::Database>(
        &'q self,
        mut query: sqlx::query::Query<'q, DB, DB::Arguments>,
    ) -> sqlx::query::Query<'q, DB, DB::Arguments>
    where
        &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
        i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    {
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

/// Whose SQL a statement is written in.
#[derive(Clone, Copy, Debug)]
pub(crate) enum SqlFlavor {
    Sqlite,
    Postgres,
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

impl AgentPage {
    /// The page of `rows` (asked for one more than `limit`, which tells whether another page
    /// follows).
    fn of(mut rows: Vec<rows::AgentRow>, limit: u32) -> Result<AgentPage, StoreError> {
        let more = rows.len() > limit as usize;
        rows.truncate(limit as usize);
        let next = match rows.last() {
            Some(last) if more => Some(ListCursor(last.seq)),
            _ => None,
        };
        let agents = rows.into_iter().map(rows::AgentRow::into_record).collect::<Result<_, _>>()?;
        Ok(AgentPage { agents, next })
    }
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

/// A saved agent configuration of one app and dialect.
#[derive(Clone, Debug, PartialEq)]
pub struct Template {
    pub id: String,
    /// The dialect's JSON, as it was saved.
    pub body: String,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}
