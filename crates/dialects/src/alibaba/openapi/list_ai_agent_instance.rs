//! `ListAIAgentInstance`: the instances of `AIAgentId`, newest first, created between `StartTime`
//! and `EndTime` (ISO 8601, both optional), a page at a time (`PageNumber` 1 to 100, `PageSize` 1
//! to 100, 10 when 0 or absent); answers `{Instances, TotalCount, PageNumber, PageSize}`.

use serde_json::{Value, json};

use super::Params;
use crate::alibaba::errors::Failure;
use crate::alibaba::wire::OriginData;
use crate::alibaba::{all_instances, from_model, signature};
use colloquy_http::AppState;
use colloquy_http::apps::App;

pub(super) async fn handle(state: &AppState, app: &App, params: &Params) -> Result<Value, Failure> {
    let ai_agent_id = params.required("AIAgentId")?;
    let start = time_param(params, "StartTime")?;
    let end = time_param(params, "EndTime")?;
    let page = params.int("PageNumber", 1, 1..=100)?.unsigned_abs() as usize;
    let size = match params.int("PageSize", 10, 0..=100)?.unsigned_abs() as usize {
        0 => 10,
        size => size,
    };
    let matching: Vec<_> = all_instances(state, app)
        .await?
        .into_iter()
        .filter(|r| OriginData::of(r).ai_agent_id == ai_agent_id)
        .filter(|r| {
            let created = u64::try_from(r.created_at.0 / 1000).unwrap_or(0);
            start.is_none_or(|s| created >= s) && end.is_none_or(|e| created <= e)
        })
        .collect();
    let instances: Vec<Value> =
        matching.iter().skip((page - 1) * size).take(size).map(from_model::instance_json).collect();
    Ok(json!({ "Instances": instances, "TotalCount": matching.len(), "PageNumber": page, "PageSize": size }))
}

/// An ISO 8601 time parameter, in Unix seconds.
fn time_param(params: &Params, name: &str) -> Result<Option<u64>, Failure> {
    match params.get(name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(text) => signature::parse_iso8601(text)
            .map(Some)
            .ok_or_else(|| Failure::invalid(format!("{name} is {text:?}; it must be yyyy-MM-ddTHH:mm:ssZ"))),
    }
}
