//! Tool calls within a reply. An LLM answer may end by asking for calls instead of (or after)
//! saying something: the core then asks the runtime to run them ([`ToolCommand::Call`]), waits for
//! each result ([`ToolInput::Result`]) or its timeout, and asks the LLM again with the turn's
//! rounds of calls and results, up to the agent's `max_rounds`; the request after the last round
//! says no more calls may be made. A failure, an unknown tool or a timeout goes back to the LLM as
//! an error result, and the turn goes on. While a round runs longer than `filler_after_ms`, the
//! agent says a filler (once per turn). A reply that ends while calls run (a barge-in, a failure,
//! a newer reply) cancels them ([`ToolCommand::Cancel`]); their results name the old turn and are
//! dropped, as are results that come after their call timed out.
//!
//! The built-in `end_call` is answered here: when the answer that called it said something, that
//! is the goodbye; otherwise the LLM is asked once more, with no calls allowed, for one. The
//! agent leaves when the reply has been said ([`LeaveReason::EndedByAgent`](crate::io::LeaveReason::EndedByAgent)), unless the user
//! cut it off.
//!
//! Rounds belong to their turn: later turns see what the agent said, not the calls it made.

use std::time::{Duration, Instant};

use colloquy_model::{PromptMessage, Speaker, ToolCall, ToolChoice, ToolKind, ToolOutcome, ToolRound, ToolUse, TurnId};

use super::{Conversation, Source};
use crate::io::{ClientEvent, Output, ProviderCommand, ToolCommand, ToolEnd, ToolInput};

/// The tool rounds of one reply.
#[derive(Debug, Default)]
pub(super) struct ToolRounds {
    /// The messages of the reply's first LLM request, sent again with each round.
    messages: Vec<PromptMessage>,
    /// The text of the answer under way, which goes with its calls.
    answer_text: String,
    /// The calls the answer under way asks for.
    asked: Vec<ToolCall>,
    /// The round running, in the order the calls were asked for.
    running: Vec<Running>,
    round_started: Option<Instant>,
    /// The rounds done.
    rounds: Vec<ToolRound>,
    filler_at: Option<Instant>,
    filler_said: bool,
    /// Time spent waiting for rounds, summed.
    waited: Duration,
    /// The LLM called `end_call`: the agent leaves once this reply has been said.
    ends_call: bool,
}

impl Running {
    /// The client event of its end; `started` is when its round began.
    fn finished(&self, turn: TurnId, started: Instant) -> ClientEvent {
        let end = match &self.outcome {
            Some(ToolOutcome::Ok(_)) => ToolEnd::Ok,
            Some(ToolOutcome::Failed(_)) => ToolEnd::Failed,
            None => ToolEnd::Cancelled,
        };
        let duration = self.ended.unwrap_or(started).saturating_duration_since(started);
        ClientEvent::ToolFinished {
            turn,
            call_id: self.call.id.clone(),
            name: self.call.name.clone(),
            duration_ms: duration.as_millis().min(u128::from(u32::MAX)) as u32,
            end,
        }
    }
}

#[derive(Debug)]
struct Running {
    call: ToolCall,
    /// Past this, the call counts as failed.
    deadline: Instant,
    outcome: Option<ToolOutcome>,
    /// When its outcome came.
    ended: Option<Instant>,
}

impl ToolRounds {
    /// More text of the answer under way.
    pub(super) fn heard(&mut self, text: &str) {
        self.answer_text.push_str(text);
    }

    /// The client events of the calls still running, cancelled at `now`.
    pub(super) fn cancelled(&self, turn: TurnId, now: Instant) -> Vec<ClientEvent> {
        let started = self.round_started.unwrap_or(now);
        self.running
            .iter()
            .filter(|r| r.outcome.is_none())
            .map(|r| {
                let mut event = r.finished(turn, started);
                if let ClientEvent::ToolFinished { duration_ms, .. } = &mut event {
                    *duration_ms = now.saturating_duration_since(started).as_millis().min(u128::from(u32::MAX)) as u32;
                }
                event
            })
            .collect()
    }

    /// Calls are running.
    pub(super) fn running(&self) -> bool {
        self.running.iter().any(|r| r.outcome.is_none())
    }

    /// The earliest of the running calls' deadlines and the filler's.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let calls = self.running.iter().filter(|r| r.outcome.is_none()).map(|r| r.deadline);
        calls.chain(self.filler_at).min()
    }

    /// The agent leaves when this reply ends (unless it is cut off).
    pub(super) fn ends_call(&self) -> bool {
        self.ends_call
    }

    /// How long the reply waited for tools, when it called any.
    pub(super) fn waited_ms(&self) -> Option<u32> {
        (!self.rounds.is_empty()).then(|| self.waited.as_millis().min(u128::from(u32::MAX)) as u32)
    }
}

impl Conversation {
    /// Asks the LLM for the reply to `messages`, offering the agent's tools.
    pub(super) fn ask_llm(&mut self, turn: TurnId, messages: Vec<PromptMessage>) {
        let functions = self.spec.tools.functions();
        let choice = if functions.is_empty() { ToolChoice::None } else { ToolChoice::Auto };
        let tools = ToolUse { functions, rounds: Vec::new(), choice };
        if let Some(reply) = self.current_reply(turn) {
            reply.tools.messages = messages.clone();
        }
        self.provider(ProviderCommand::LlmStart { turn, messages, params: self.spec.llm.params, tools });
    }

    /// The answer under way asks for `call`.
    pub(super) fn on_tool_call(&mut self, turn: TurnId, call: ToolCall) {
        let now = self.now;
        let Some(reply) = self.current_reply(turn).filter(|r| !r.failed) else { return };
        if matches!(reply.source, Source::Llm { done: false }) {
            reply.progress_at = now;
            reply.tools.asked.push(call);
        }
    }

    /// The answer under way is complete: runs the calls it asked for, if it asked for any and the
    /// turn has rounds left. Returns whether a round started (the reply goes on after it).
    pub(super) fn start_tool_round(&mut self, turn: TurnId) -> bool {
        let now = self.now;
        let max_rounds = self.spec.tools.max_rounds as usize;
        let filler_after = Duration::from_millis(self.spec.tools.filler_after_ms.into());
        let has_fillers = !self.spec.tools.fillers.is_empty();
        let Some(reply) = self.reply.as_mut().filter(|r| r.turn == turn) else { return false };
        let asked = std::mem::take(&mut reply.tools.asked);
        if asked.is_empty() || reply.tools.rounds.len() >= max_rounds {
            // Calls after the last round (the model was told it may not) are not made.
            return false;
        }
        let end_call =
            |call: &ToolCall| self.spec.tools.find(&call.name).is_some_and(|tool| tool.kind == ToolKind::EndCall);
        if asked.iter().any(end_call) {
            reply.tools.ends_call = true;
            if reply.playout.clause_count() > 0 {
                // The goodbye is in this answer: it is said, and the agent leaves.
                return false;
            }
        }
        let mut commands = Vec::new();
        let mut running = Vec::new();
        for call in asked {
            match self.spec.tools.find(&call.name) {
                Some(tool) if tool.kind == ToolKind::EndCall => {
                    let outcome = Some(ToolOutcome::Ok(r#"{"ended":true,"now":"say a short goodbye"}"#.into()));
                    running.push(Running { call, deadline: now, outcome, ended: Some(now) });
                }
                Some(tool) => {
                    let timeout_ms = tool.timeout_ms;
                    let deadline = now + Duration::from_millis(timeout_ms.into());
                    commands.push(ToolCommand::Call { turn, call: call.clone(), timeout_ms });
                    running.push(Running { call, deadline, outcome: None, ended: None });
                }
                None => {
                    let outcome = Some(ToolOutcome::Failed(format!("there is no tool named {:?}", call.name)));
                    running.push(Running { call, deadline: now, outcome, ended: Some(now) });
                }
            }
        }
        reply.tools.running = running;
        reply.tools.round_started = Some(now);
        if has_fillers && !reply.tools.filler_said {
            reply.tools.filler_at = Some(now + filler_after);
        }
        // A provider stall counts from the slowest call's deadline, not from the LLM's last word.
        let latest = reply.tools.running.iter().map(|r| r.deadline).max().unwrap_or(now);
        reply.progress_at = reply.progress_at.max(latest);
        let started: Vec<_> = reply
            .tools
            .running
            .iter()
            .map(|r| ClientEvent::ToolStarted { turn, call_id: r.call.id.clone(), name: r.call.name.clone() })
            .collect();
        let answered: Vec<_> =
            reply.tools.running.iter().filter(|r| r.outcome.is_some()).map(|r| r.finished(turn, now)).collect();
        self.outputs.extend(started.into_iter().map(Output::Client));
        self.outputs.extend(commands.into_iter().map(Output::Tool));
        self.outputs.extend(answered.into_iter().map(Output::Client));
        self.finish_round_if_complete(turn);
        true
    }

    pub(super) fn on_tool(&mut self, input: ToolInput) {
        let ToolInput::Result { turn, call_id, outcome } = input;
        let now = self.now;
        let Some(reply) = self.current_reply(turn) else { return };
        let Some(running) = reply.tools.running.iter_mut().find(|r| r.call.id == call_id && r.outcome.is_none()) else {
            return;
        };
        running.outcome = Some(outcome);
        running.ended = Some(now);
        let finished = running.finished(turn, reply.tools.round_started.unwrap_or(now));
        self.outputs.push_back(Output::Client(finished));
        self.finish_round_if_complete(turn);
    }

    /// Times out the calls past their deadline, and says the filler when it is due.
    pub(super) fn on_tool_timers(&mut self) {
        let now = self.now;
        let Some(reply) = self.reply.as_mut() else { return };
        let turn = reply.turn;
        let started = reply.tools.round_started.unwrap_or(now);
        let mut finished = Vec::new();
        for running in reply.tools.running.iter_mut().filter(|r| r.outcome.is_none() && r.deadline <= now) {
            let waited = now.saturating_duration_since(started);
            running.outcome = Some(ToolOutcome::Failed(format!("no result after {} ms", waited.as_millis())));
            running.ended = Some(now);
            finished.push(running.finished(turn, started));
        }
        let expired = !finished.is_empty();
        self.outputs.extend(finished.into_iter().map(Output::Client));
        if reply.tools.filler_at.is_some_and(|at| at <= now) {
            reply.tools.filler_at = None;
            if reply.tools.running() {
                reply.tools.filler_said = true;
                let fillers = &self.spec.tools.fillers;
                if let Some(filler) = fillers.get(turn.0 as usize % fillers.len().max(1)).cloned() {
                    self.send_clause(filler);
                }
            }
        }
        if expired {
            self.finish_round_if_complete(turn);
        }
    }

    /// Every call of the round has its outcome: asks the LLM again with the turn's rounds.
    fn finish_round_if_complete(&mut self, turn: TurnId) {
        let now = self.now;
        let max_rounds = self.spec.tools.max_rounds as usize;
        let params = self.spec.llm.params;
        let functions = self.spec.tools.functions();
        let Some(reply) = self.current_reply(turn) else { return };
        if reply.tools.running.is_empty() || reply.tools.running() {
            return;
        }
        let tools = &mut reply.tools;
        let started = tools.round_started.unwrap_or(now);
        let mut records = Vec::new();
        let calls = std::mem::take(&mut tools.running)
            .into_iter()
            .map(|r| {
                let outcome = r.outcome.expect("every call has its outcome");
                let tool_ms = r.ended.unwrap_or(now).saturating_duration_since(started).as_millis();
                let content = outcome.history_content(&r.call, tool_ms.min(u128::from(u32::MAX)) as u32);
                records.push(Output::History { turn, speaker: Speaker::Tool, content, interrupted: false });
                (r.call, outcome)
            })
            .collect();
        tools.rounds.push(ToolRound { text: std::mem::take(&mut tools.answer_text), calls });
        tools.waited += now.saturating_duration_since(tools.round_started.take().unwrap_or(now));
        tools.filler_at = None;
        reply.times.tool_ms = tools.waited_ms();
        let more = tools.rounds.len() < max_rounds && !tools.ends_call;
        let choice = if more { ToolChoice::Auto } else { ToolChoice::None };
        let request = ToolUse { functions, rounds: tools.rounds.clone(), choice };
        let messages = tools.messages.clone();
        reply.source = Source::Llm { done: false };
        reply.progress_at = now;
        self.outputs.extend(records);
        self.provider(ProviderCommand::LlmStart { turn, messages, params, tools: request });
    }
}
