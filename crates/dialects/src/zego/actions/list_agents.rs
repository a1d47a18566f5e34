//! `ListAgents`: a page of the app's templates, in `AgentId` order: `Limit` (0 or absent: 5; at
//! most 10, as ZEGO's) from `Cursor`; answers `{Total, Agents, Cursor}`, `Total` counting every
//! template of the app, `Cursor` empty on the last page, API keys redacted.

use colloquy_http::{AppState, fields};
use colloquy_model::AppId;
use serde_json::{Value, json};

use super::TEMPLATES;
use crate::zego::errors::ZegoResult;
use crate::zego::{DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT, from_model, wire};

pub(crate) async fn run(state: &AppState, app: &AppId, body: wire::ListAgents) -> ZegoResult<Value> {
    let limit = match body.limit.unwrap_or(0) {
        0 => DEFAULT_LIST_LIMIT,
        limit => fields::in_range("Limit", limit, 1..=MAX_LIST_LIMIT)?,
    };
    let cursor = body.cursor.filter(|c| !c.is_empty());
    let store = state.supervisor().store();
    // One more than asked, to know whether a next page exists.
    let mut page = store.list_templates(app, TEMPLATES, cursor.as_deref(), limit + 1).await?;
    let more = page.len() > limit as usize;
    page.truncate(limit as usize);
    let next = if more { page.last().map(|t| t.id.clone()).unwrap_or_default() } else { String::new() };
    let agents = page.iter().map(|t| from_model::template_to_wire(&t.body)).collect::<ZegoResult<Vec<_>>>()?;
    let total = store.count_templates(app, TEMPLATES).await?;
    Ok(json!({ "Total": total, "Agents": agents, "Cursor": next }))
}
