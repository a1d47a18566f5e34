//! What both engines read and write the same way: the rows as they come out of a query (decoded by
//! sqlx's `FromRow`, which works on either engine's rows) and their translation into the model, and
//! the values the model is written as. Only the SQL differs between the engines.

use std::str::FromStr;

use colloquy_model::{
    AgentId, AgentRecord, AgentState, AgentStatus, AppId, ExitReason, HistoryEntry, TurnDetail, TurnMetrics,
    TurnRecord, UnixMillis,
};

use crate::{OutgoingWebhook, PendingWebhook, StateChange, StoreError, Template};

/// A row of `agents`.
#[derive(sqlx::FromRow)]
pub(crate) struct AgentRow {
    pub seq: i64,
    id: String,
    app_id: String,
    status: String,
    reason_code: Option<String>,
    reason_detail: Option<String>,
    spec: String,
    created_at: i64,
    stopped_at: Option<i64>,
}

impl AgentRow {
    pub fn into_record(self) -> Result<AgentRecord, StoreError> {
        Ok(AgentRecord {
            id: AgentId::from_string(self.id),
            app: AppId::new(self.app_id).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            spec: serde_json::from_str(&self.spec).map_err(|e| StoreError::Corrupt(format!("agent spec: {e}")))?,
            state: state_from_parts(&self.status, self.reason_code, self.reason_detail)?,
            created_at: UnixMillis(self.created_at),
            stopped_at: self.stopped_at.map(UnixMillis),
        })
    }
}

/// A row of `agent_state_changes`.
#[derive(sqlx::FromRow)]
pub(crate) struct StateChangeRow {
    at: i64,
    status: String,
    reason_code: Option<String>,
    reason_detail: Option<String>,
}

impl StateChangeRow {
    pub fn into_change(self) -> Result<StateChange, StoreError> {
        Ok(StateChange {
            at: UnixMillis(self.at),
            state: state_from_parts(&self.status, self.reason_code, self.reason_detail)?,
        })
    }
}

/// A row of `history`.
#[derive(sqlx::FromRow)]
pub(crate) struct HistoryRow {
    turn_id: i64,
    speaker: String,
    content: String,
    interrupted: bool,
    at: i64,
}

impl HistoryRow {
    pub fn into_entry(self) -> Result<HistoryEntry, StoreError> {
        Ok(HistoryEntry {
            turn_id: self.turn_id as u64,
            speaker: from_json_str(&self.speaker)?,
            content: self.content,
            interrupted: self.interrupted,
            at: UnixMillis(self.at),
        })
    }
}

/// A row of `turns`.
#[derive(sqlx::FromRow)]
pub(crate) struct TurnRow {
    turn_id: i64,
    start_kind: String,
    end_kind: String,
    started_at: i64,
    ended_at: i64,
    metrics: String,
    detail: Option<String>,
}

impl TurnRow {
    pub fn into_record(self) -> Result<TurnRecord, StoreError> {
        let detail = match self.detail {
            Some(detail) => serde_json::from_str::<TurnDetail>(&detail)
                .map_err(|e| StoreError::Corrupt(format!("turn detail: {e}")))?,
            None => TurnDetail::default(),
        };
        Ok(TurnRecord {
            turn_id: self.turn_id as u64,
            start: from_json_str(&self.start_kind)?,
            end: from_json_str(&self.end_kind)?,
            started_at: UnixMillis(self.started_at),
            ended_at: UnixMillis(self.ended_at),
            metrics: serde_json::from_str::<TurnMetrics>(&self.metrics)
                .map_err(|e| StoreError::Corrupt(format!("turn metrics: {e}")))?,
            detail,
        })
    }
}

/// A turn as its columns hold it.
pub(crate) struct TurnColumns {
    pub start: String,
    pub end: String,
    pub metrics: String,
    pub detail: String,
}

impl TurnColumns {
    pub fn of(turn: &TurnRecord) -> Result<TurnColumns, StoreError> {
        Ok(TurnColumns {
            start: to_json_str(&turn.start),
            end: to_json_str(&turn.end),
            metrics: serde_json::to_string(&turn.metrics).map_err(|e| StoreError::Corrupt(e.to_string()))?,
            detail: serde_json::to_string(&turn.detail).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        })
    }
}

/// A row of `webhook_outbox` as a delivery reads it.
#[derive(sqlx::FromRow)]
pub(crate) struct PendingRow {
    seq: i64,
    app_id: String,
    agent_id: String,
    url: String,
    headers: String,
    body: String,
    attempts: i64,
    created_at: i64,
    next_attempt_at: i64,
}

impl PendingRow {
    /// Claimed rows come back from an `UPDATE … RETURNING` in no particular order: this puts them
    /// in the order they are due.
    pub fn into_due(mut rows: Vec<PendingRow>) -> Result<Vec<PendingWebhook>, StoreError> {
        rows.sort_by_key(|row| (row.next_attempt_at, row.seq));
        rows.into_iter().map(PendingRow::into_pending).collect()
    }

    fn into_pending(self) -> Result<PendingWebhook, StoreError> {
        Ok(PendingWebhook {
            seq: self.seq,
            app: self.app_id,
            attempts: self.attempts as u32,
            webhook: OutgoingWebhook {
                agent_id: AgentId::from_string(self.agent_id),
                url: self.url,
                headers: serde_json::from_str(&self.headers)
                    .map_err(|e| StoreError::Corrupt(format!("webhook headers: {e}")))?,
                body: self.body,
                created_at: UnixMillis(self.created_at),
            },
        })
    }
}

/// A row of `templates`.
#[derive(sqlx::FromRow)]
pub(crate) struct TemplateRow {
    template_id: String,
    body: String,
    created_at: i64,
    updated_at: i64,
}

impl TemplateRow {
    pub fn into_template(self) -> Template {
        Template {
            id: self.template_id,
            body: self.body,
            created_at: UnixMillis(self.created_at),
            updated_at: UnixMillis(self.updated_at),
        }
    }
}

/// An agent's configuration as its column holds it (secrets redacted by the model's serde).
pub(crate) fn spec_column(agent: &colloquy_model::AgentSpec) -> Result<String, StoreError> {
    serde_json::to_string(agent).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A delivery's headers as their column holds them.
pub(crate) fn headers_column(webhook: &OutgoingWebhook) -> Result<String, StoreError> {
    serde_json::to_string(&webhook.headers).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn reason_parts(reason: Option<&ExitReason>) -> (Option<&'static str>, Option<&str>) {
    (reason.map(ExitReason::code), reason.and_then(ExitReason::detail))
}

fn state_from_parts(status: &str, code: Option<String>, detail: Option<String>) -> Result<AgentState, StoreError> {
    let status = AgentStatus::from_str(status).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let reason = match code {
        Some(code) => Some(
            ExitReason::from_parts(&code, detail)
                .ok_or_else(|| StoreError::Corrupt(format!("reason code {code:?}")))?,
        ),
        None => None,
    };
    AgentState::from_parts(status, reason).ok_or_else(|| StoreError::Corrupt(format!("state {status} and its reason")))
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
