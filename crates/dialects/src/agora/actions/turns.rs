//! `GET /agents/{agent_id}/turns`: the agent's turns with their latencies, paged by `page_index`
//! and `page_size`.

use axum::extract::RawQuery;

use super::parse_query;
use crate::agora::auth::AgentCall;
use crate::agora::errors::{AgoraError, AgoraResult};
use crate::agora::from_model::turn_json;
use crate::agora::wire;

const DEFAULT_PAGE_SIZE: u32 = 50;
const MAX_PAGE_SIZE: u32 = 200;

pub(crate) async fn handle(
    AgentCall { state, caller, id }: AgentCall,
    RawQuery(raw): RawQuery,
) -> AgoraResult<axum::Json<wire::TurnsResponse>> {
    let q: wire::TurnsQuery = parse_query(raw.as_deref())?;
    let page_index = q.page_index.unwrap_or(1);
    let page_size = q.page_size.unwrap_or(DEFAULT_PAGE_SIZE);
    if page_index == 0 {
        return Err(AgoraError::invalid("page_index starts at 1"));
    }
    if !(1..=MAX_PAGE_SIZE).contains(&page_size) {
        return Err(AgoraError::invalid(format!("page_size is {page_size}; it must be between 1 and {MAX_PAGE_SIZE}")));
    }
    let record = caller.agent(&state, &id).await?;
    let all = state.supervisor().turns(&caller.app.id, &id).await?;
    let total = all.len();
    let total_pages = total.div_ceil(page_size as usize) as u32;
    let start = (page_index as usize - 1).saturating_mul(page_size as usize);
    let turns = all.iter().skip(start).take(page_size as usize).map(|t| turn_json(&record, t, false)).collect();
    Ok(axum::Json(wire::TurnsResponse {
        agent_id: id.to_string(),
        name: record.spec.name.to_string(),
        channel: record.spec.channel.to_string(),
        total_turn_count: total,
        pagination: wire::Pagination { page_index, total_pages, is_last_page: page_index >= total_pages },
        turns,
    }))
}
