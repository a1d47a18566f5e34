//! `ListAIAgentDialogues`: what was said in the session `SessionId` (every instance started with
//! it), between `StartTime` and `EndTime` (Unix milliseconds; `EndTime` required), in `Order`
//! `ASC` or `DESC` of time, a page at a time (`PageNumber`, `PageSize` 1 to 100, 20 when absent);
//! answers `{Dialogues, TotalCount}`.

use colloquy_model::HistoryEntry;
use serde_json::{Value, json};

use super::Params;
use crate::alibaba::errors::Failure;
use crate::alibaba::wire::OriginData;
use crate::alibaba::{all_instances, from_model};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let session = params.required("SessionId")?;
    let start = params.int("StartTime", 0, 0..=i64::MAX)?;
    let end = params.int("EndTime", i64::MAX, 0..=i64::MAX)?;
    if params.get("EndTime").is_none_or(str::is_empty) {
        return Err(Failure::missing("EndTime"));
    }
    let descending = match params.get("Order").unwrap_or("ASC") {
        "ASC" | "asc" | "" => false,
        "DESC" | "desc" => true,
        other => return Err(Failure::invalid(format!("Order is {other:?}; it must be ASC or DESC"))),
    };
    let page = params.int("PageNumber", 1, 1..=i64::from(u32::MAX))?.unsigned_abs() as usize;
    let size = params.int("PageSize", 20, 1..=100)?.unsigned_abs() as usize;
    let mut rows: Vec<(i64, Value)> = Vec::new();
    for record in all_instances(state, app).await? {
        if OriginData::of(&record).session_id.as_deref() != Some(session) {
            continue;
        }
        let history: Vec<HistoryEntry> = state.supervisor().history(&app.id, &record.id).await?;
        let turns = state.supervisor().turns(&app.id, &record.id).await?;
        for (i, entry) in history.into_iter().enumerate() {
            if entry.at.0 < start || entry.at.0 > end {
                continue;
            }
            rows.push((entry.at.0, from_model::dialogue_json(&record, i, entry, &turns)));
        }
    }
    rows.sort_by_key(|(at, _)| *at);
    if descending {
        rows.reverse();
    }
    let total = rows.len();
    let dialogues: Vec<Value> = rows.into_iter().skip((page - 1) * size).take(size).map(|(_, v)| v).collect();
    Ok(json!({ "Dialogues": dialogues, "TotalCount": total }))
}
