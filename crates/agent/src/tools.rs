//! Runs the tool calls the conversation asks for ([`ToolCommand`]), each in a task of its own that
//! reports its outcome back to the loop as an [`Input::Tool`]. The conversation keeps each call's
//! timeout and drops results of cancelled turns; cancelling here stops the work itself.

use std::time::Duration;

use colloquy_conversation::{Input, ToolCommand, ToolInput};
use colloquy_model::{Secret, ToolCall, ToolKind, ToolOutcome, Tools, TurnId};
use colloquy_providers::tools::{HttpToolCall, HttpTools, MAX_RESULT_BYTES, oversized};
use colloquy_rtc::server::AgentHandle;
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
    /// Where client tools' calls go, and the uid they come from.
    channel: AgentHandle,
    agent_uid: String,
    /// Client tools' calls waiting for their `tool.result`: call id, turn.
    client_calls: Vec<(String, TurnId)>,
}

impl ToolRunner {
    pub(crate) fn new(
        agent_id: String,
        secret: Option<Secret>,
        reports: mpsc::Sender<Input>,
        channel: AgentHandle,
        agent_uid: String,
    ) -> ToolRunner {
        let http =
            HttpTools::new().inspect_err(|e| tracing::error!(%agent_id, error = %e, "no HTTP client for tools")).ok();
        ToolRunner {
            agent_id,
            secret,
            http,
            reports,
            running: Vec::new(),
            channel,
            agent_uid,
            client_calls: Vec::new(),
        }
    }

    /// Carries out `command` for an agent whose tools are `tools`.
    pub(crate) fn handle(&mut self, command: ToolCommand, tools: &Tools) {
        self.running.retain(|(_, task)| !task.is_finished());
        match command {
            ToolCommand::Call { turn, call, timeout_ms } => {
                let timeout = Duration::from_millis(timeout_ms.into());
                let work = match tools.find(&call.name).map(|tool| &tool.kind) {
                    Some(ToolKind::Http { url }) => self.http_call(url.clone(), call.clone(), timeout),
                    Some(ToolKind::Client) => {
                        // The result comes back on the data channel; the conversation keeps the
                        // timeout.
                        let ts = colloquy_supervisor::now().0;
                        let message = crate::protocol::tool_call_message(turn, &call, &self.agent_uid, ts);
                        self.client_calls.push((call.id.clone(), turn));
                        let channel = self.channel.clone();
                        let task = tokio::spawn(async move { channel.send_data(None, message).await });
                        self.running.push((turn, task.abort_handle()));
                        return;
                    }
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
            ToolCommand::Cancel { turn } => {
                self.client_calls.retain(|(_, t)| *t != turn);
                self.running.retain(|(t, task)| {
                    if *t == turn {
                        task.abort();
                    }
                    *t != turn
                })
            }
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

    /// A data message from a participant: the result of a client tool's call, when it is one that
    /// is waited for.
    pub(crate) fn client_result(&mut self, text: &str) -> Option<Input> {
        let (call_id, outcome) = crate::protocol::tool_result(text)?;
        let position = self.client_calls.iter().position(|(id, _)| *id == call_id)?;
        let (_, turn) = self.client_calls.remove(position);
        Some(Input::Tool(ToolInput::Result { turn, call_id, outcome: bounded(outcome) }))
    }

    pub(crate) fn cancel_all(&mut self) {
        self.client_calls.clear();
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
