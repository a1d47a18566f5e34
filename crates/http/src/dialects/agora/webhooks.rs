//! This dialect's webhooks. (Being written.)

use colloquy_model::AgentEvent;
use colloquy_store::{OutgoingWebhook, Store};

pub async fn format(_event: &AgentEvent, _store: &Store) -> Vec<OutgoingWebhook> {
    Vec::new()
}
