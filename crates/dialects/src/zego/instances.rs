//! ZEGO's limit of live agent instances per app ([`MAX_INSTANCES`]), kept under racing creates.
//!
//! Counting the live instances and then starting one is a race: 40 creates at once all counted
//! fewer than ten. A create now reserves its place under one lock, by the name its agent will
//! have: the count is the live instances not yet reserved plus the reservations, so an instance
//! whose start is under way is counted once, and a reservation ends when its create does.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use colloquy_model::{AgentName, AgentStatus, AppId, Dialect};
use colloquy_store::AgentFilter;

use super::MAX_INSTANCES;
use super::errors::{ZegoError, ZegoResult, codes};
use colloquy_http::AppState;

/// The creates under way, per app, by agent name.
#[derive(Debug, Default)]
pub struct InstanceGate {
    /// Serializes the count-and-reserve step.
    counting: tokio::sync::Mutex<()>,
    reserved: Mutex<HashMap<AppId, HashSet<AgentName>>>,
}

/// A place among the app's instances, held until the create is over.
#[derive(Debug)]
pub struct Reservation<'a> {
    gate: &'a InstanceGate,
    app: AppId,
    name: AgentName,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let mut reserved = self.gate.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(names) = reserved.get_mut(&self.app) {
            names.remove(&self.name);
            if names.is_empty() {
                reserved.remove(&self.app);
            }
        }
    }
}

impl InstanceGate {
    /// Reserves a place for `name` among `app`'s instances, or refuses when the app has its
    /// maximum live or being created.
    pub async fn reserve(&self, state: &AppState, app: &AppId, name: &AgentName) -> ZegoResult<Reservation<'_>> {
        let _counting = self.counting.lock().await;
        // The creates under way, read *before* the records: a create's agent is recorded before
        // its reservation ends, so one that ends between the two reads is in the records, and
        // one that ended before the first read is there too. Read the other way round, a create
        // that ended in between would be in neither, and an eleventh instance would get through.
        let under_way: HashSet<AgentName> = self.reserved_names(app);
        if under_way.contains(name) {
            // A create of the same instance (room and agent user) is under way.
            return Err(colloquy_supervisor::SupervisorError::NameTaken(name.to_string()).into());
        }
        let filter = AgentFilter {
            statuses: AgentStatus::ALL.into_iter().filter(|s| !s.is_terminal()).collect(),
            ..AgentFilter::default()
        };
        let page = state.supervisor().list(app, &filter, None, 1000).await?;
        let recorded = page
            .agents
            .iter()
            .filter(|a| a.spec.origin.dialect == Dialect::Zego && !under_way.contains(&a.spec.name))
            .count();
        if recorded + under_way.len() >= MAX_INSTANCES {
            return Err(ZegoError::new(
                codes::INSTANCE_LIMIT,
                format!("the app already has its maximum of {MAX_INSTANCES} agent instances"),
            ));
        }
        let mut reserved = self.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let names = reserved.entry(app.clone()).or_default();
        names.insert(name.clone());
        Ok(Reservation { gate: self, app: app.clone(), name: name.clone() })
    }

    fn reserved_names(&self, app: &AppId) -> HashSet<AgentName> {
        let reserved = self.reserved.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        reserved.get(app).cloned().unwrap_or_default()
    }
}
