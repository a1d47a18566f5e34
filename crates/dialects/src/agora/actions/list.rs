//! `GET /agents`: the app's agents, newest first, filtered by channel, state and creation time,
//! paged by an opaque cursor. A token caller lists its own channel (and uid) only.

use axum::extract::RawQuery;
use colloquy_model::{AgentRecord, AgentStatus, ChannelName, Uid, UnixMillis};
use colloquy_store::{AgentFilter, ListCursor};

use super::parse_query;
use crate::agora::auth::{Call, Caller, Scope};
use crate::agora::errors::{AgoraError, AgoraResult};
use crate::agora::from_model::{secs, status_name};
use crate::agora::{now_secs, wire};

const DEFAULT_LIMIT: u32 = 20;
const MAX_LIMIT: u32 = 100;
/// `from_time` defaults to two hours ago.
const DEFAULT_WINDOW_SECS: i64 = 2 * 3600;

fn decode_cursor(cursor: &str) -> AgoraResult<ListCursor> {
    colloquy_http::fields::decode_cursor(cursor).map_err(AgoraError::from)
}

fn parse_states(states: &str) -> AgoraResult<Vec<AgentStatus>> {
    states
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<u8>()
                .ok()
                .and_then(|code| AgentStatus::ALL.into_iter().find(|status| status.code() == code))
                .or_else(|| s.parse().ok())
                .ok_or_else(|| {
                    AgoraError::invalid(format!(
                        "state {s:?} is not a state; expected numbers 0 to 6 separated by commas"
                    ))
                })
        })
        .collect()
}

pub(crate) async fn handle(
    Call { state, caller }: Call,
    RawQuery(raw): RawQuery,
) -> AgoraResult<axum::Json<wire::ListResponse>> {
    let Caller { app, scope } = caller;
    let q: wire::ListQuery = parse_query(raw.as_deref())?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(AgoraError::invalid(format!("limit is {limit}; it must be between 1 and {MAX_LIMIT}")));
    }
    let after = q.cursor.as_deref().filter(|c| !c.is_empty()).map(decode_cursor).transpose()?;
    let Some(filter) = filter(&q, &scope)? else {
        // The token's uid is no uid an agent can have: it reaches none.
        return Ok(axum::Json(answer(Vec::new(), None, 0)));
    };
    // Newest first; `meta.total` is every agent that matches, as Agora defines it.
    let page = state.supervisor().list(&app.id, &filter, after, limit).await?;
    let total = state.supervisor().count(&app.id, &filter).await?;
    Ok(axum::Json(answer(page.agents, page.next, total)))
}

/// The store's filter for the query and what the caller's credentials reach (a token: its channel
/// and uid); `None` when they reach nothing.
fn filter(q: &wire::ListQuery, scope: &Scope) -> AgoraResult<Option<AgentFilter>> {
    let mut filter = AgentFilter::default();
    let channel = match (q.channel.clone().filter(|c| !c.is_empty()), scope) {
        // A token lists its own channel only.
        (Some(channel), Scope::Channel(grant)) if channel != grant.channel => {
            return Err(AgoraError::forbidden(format!(
                "the token grants channel {:?} only, not {channel:?}",
                grant.channel
            )));
        }
        (None, Scope::Channel(grant)) => Some(grant.channel.clone()),
        (channel, _) => channel,
    };
    if let Some(channel) = channel {
        filter.channel = Some(ChannelName::new(channel).map_err(|e| AgoraError::invalid(format!("channel: {}", e.0)))?);
    }
    if let Scope::Channel(grant) = scope
        && let Some(uid) = &grant.uid
    {
        match Uid::new(uid.clone()) {
            Ok(uid) => filter.agent_uid = Some(uid),
            Err(_) => return Ok(None),
        }
    }
    filter.statuses = match q.state.as_deref() {
        Some(states) => parse_states(states)?,
        None => vec![AgentStatus::Running],
    };
    // Agora's times are seconds, both ends inclusive.
    let from = q.from_time.unwrap_or(now_secs() - DEFAULT_WINDOW_SECS);
    filter.created_from = Some(UnixMillis(from.saturating_mul(1000)));
    filter.created_to = q.to_time.map(|to| UnixMillis(to.saturating_mul(1000).saturating_add(999)));
    Ok(Some(filter))
}

fn answer(agents: Vec<AgentRecord>, next: Option<ListCursor>, total: u64) -> wire::ListResponse {
    let list: Vec<wire::ListItem> = agents
        .iter()
        .map(|r| wire::ListItem { start_ts: secs(r.created_at.0), status: status_name(r), agent_id: r.id.to_string() })
        .collect();
    wire::ListResponse {
        data: wire::ListData { count: list.len(), list },
        meta: wire::ListMeta {
            cursor: next.map(colloquy_http::fields::encode_cursor).unwrap_or_default(),
            total: total as usize,
        },
        status: "ok",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_states_parse() {
        assert_eq!(decode_cursor(&colloquy_http::fields::encode_cursor(ListCursor(7))).unwrap(), ListCursor(7));
        assert_eq!(decode_cursor("nope").unwrap_err().reason, "InvalidFieldValue");
        assert_eq!(parse_states("0, 2,6").unwrap(), [AgentStatus::Idle, AgentStatus::Running, AgentStatus::Failed]);
        assert_eq!(parse_states("RUNNING").unwrap(), [AgentStatus::Running]);
        assert!(parse_states("9").is_err());
    }
}
