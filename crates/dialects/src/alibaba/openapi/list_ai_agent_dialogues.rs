//! `ListAIAgentDialogues`: what was said in the session `SessionId` (every instance started with
//! it), between `StartTime` and `EndTime` (Unix milliseconds; `EndTime` required), in `Order`
//! `DESC` (Alibaba's default) or `ASC` of time, a page at a time (`PageNumber`, `PageSize` 1 to
//! 100, 20 when absent), or only the most recent `RoundLimit` rounds (overriding the paging);
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
    let descending = match params.get("Order").unwrap_or("DESC") {
        "DESC" | "desc" | "" => true,
        "ASC" | "asc" => false,
        other => return Err(Failure::invalid(format!("Order is {other:?}; it must be ASC or DESC"))),
    };
    let page = params.int("PageNumber", 1, 1..=i64::from(u32::MAX))?.unsigned_abs() as usize;
    let size = params.int("PageSize", 20, 1..=100)?.unsigned_abs() as usize;
    let round_limit = params.int("RoundLimit", 0, 0..=i64::from(u32::MAX))?.unsigned_abs() as usize;
    // (time, round: the instance and its turn, the dialogue)
    let mut rows: Vec<(i64, (String, u64), Value)> = Vec::new();
    for record in all_instances(state, app).await? {
        if OriginData::of(&record).session_id.as_deref() != Some(session) {
            continue;
        }
        let history: Vec<HistoryEntry> = state.supervisor().history(&app.id, &record.id).await?;
        let turns = state.supervisor().turns(&app.id, &record.id).await?;
        for (i, entry) in history.into_iter().enumerate() {
            // Tool calls have no place among Alibaba's dialogues.
            if entry.at.0 < start || entry.at.0 > end || entry.speaker == colloquy_model::Speaker::Tool {
                continue;
            }
            let round = (record.id.to_string(), entry.turn_id);
            rows.push((entry.at.0, round, from_model::dialogue_json(&record, i, entry, &turns)));
        }
    }
    rows.sort_by_key(|(at, _, _)| *at);
    if round_limit > 0 {
        // The most recent rounds: those whose latest line is among the last `round_limit`.
        let mut recent: Vec<&(String, u64)> = Vec::new();
        for (_, round, _) in rows.iter().rev() {
            if !recent.contains(&round) {
                recent.push(round);
            }
        }
        recent.truncate(round_limit);
        let recent: Vec<(String, u64)> = recent.into_iter().cloned().collect();
        rows.retain(|(_, round, _)| recent.contains(round));
    }
    if descending {
        rows.reverse();
    }
    let total = rows.len();
    let rows = rows.into_iter().map(|(_, _, dialogue)| dialogue);
    let dialogues: Vec<Value> =
        if round_limit > 0 { rows.collect() } else { rows.skip((page - 1) * size).take(size).collect() };
    Ok(json!({ "Dialogues": dialogues, "TotalCount": total }))
}
