//! Runs the tool calls the conversation asks for ([`ToolCommand`]), each in a task of its own that
//! reports its outcome back to the loop as an [`Input::Tool`]. The conversation keeps each call's
//! timeout and drops results of cancelled turns; cancelling here stops the work itself.

use std::time::Duration;

use colloquy_conversation::{Input, ToolCommand, ToolInput};
use colloquy_model::{Secret, ToolCall, ToolKind, ToolOutcome, Tools, TurnId};
use colloquy_providers::tools::{HttpToolCall, HttpTools, MAX_RESULT_BYTES, oversized};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

#[derive(Debug)]
pub(crate) struct ToolRunner {
    agent_id: String,
    secret: Option<Secret>,
    http: Option<HttpTools>,
    reports: mpsc::Sender<Input>,
    /// The calls under way, by turn.
    running: Vec<(TurnId, AbortHandle)>,
}

impl ToolRunner {
    pub(crate) fn new(agent_id: String, secret: Option<Secret>, reports: mpsc::Sender<Input>) -> ToolRunner {
        let http =
            HttpTools::new().inspect_err(|e| tracing::error!(%agent_id, error = %e, "no HTTP client for tools")).ok();
        ToolRunner { agent_id, secret, http, reports, running: Vec::new() }
    }

    /// Carries out `command` for an agent whose tools are `tools`.
    pub(crate) fn handle(&mut self, command: ToolCommand, tools: &Tools) {
        self.running.retain(|(_, task)| !task.is_finished());
        match command {
            ToolCommand::Call { turn, call, timeout_ms } => {
                let timeout = Duration::from_millis(timeout_ms.into());
                let work = match tools.find(&call.name).map(|tool| &tool.kind) {
                    Some(ToolKind::Http { url }) => self.http_call(url.clone(), call.clone(), timeout),
                    // The conversation only asks for tools the agent has, and answers `end_call`
                    // itself.
                    Some(ToolKind::EndCall) | None => {
                        let outcome = ToolOutcome::Failed(format!("there is no tool named {:?}", call.name));
                        Box::pin(std::future::ready(outcome))
                    }
                };
                let reports = self.reports.clone();
                let task = tokio::spawn(async move {
                    let outcome = bounded(work.await);
                    let _ = reports.send(Input::Tool(ToolInput::Result { turn, call_id: call.id, outcome })).await;
                });
                self.running.push((turn, task.abort_handle()));
            }
            ToolCommand::Cancel { turn } => self.running.retain(|(t, task)| {
                if *t == turn {
                    task.abort();
                }
                *t != turn
            }),
        }
    }

    fn http_call(
        &self,
        url: String,
        call: ToolCall,
        timeout: Duration,
    ) -> std::pin::Pin<Box<dyn Future<Output = ToolOutcome> + Send>> {
        let Some(http) = self.http.clone() else {
            return Box::pin(std::future::ready(ToolOutcome::Failed("no HTTP client".into())));
        };
        let (agent_id, secret) = (self.agent_id.clone(), self.secret.clone());
        Box::pin(async move {
            let timestamp_ms = colloquy_supervisor::now().0;
            let request = HttpToolCall {
                url: &url,
                call: &call,
                agent_id: &agent_id,
                secret: secret.as_ref(),
                timeout,
                timestamp_ms,
            };
            http.call(request).await
        })
    }

    pub(crate) fn cancel_all(&mut self) {
        for (_, task) in self.running.drain(..) {
            task.abort();
        }
    }
}

/// Whatever a tool sent, the LLM gets at most [`MAX_RESULT_BYTES`].
fn bounded(outcome: ToolOutcome) -> ToolOutcome {
    match outcome {
        ToolOutcome::Ok(result) if result.len() > MAX_RESULT_BYTES => ToolOutcome::Failed(oversized(result.len())),
        outcome => outcome,
    }
}
