//! Turns what the conversation does into [`ConversationEvent`]s for webhooks: the user's speech
//! starting and ending (the core asks ASR to start and finish), transcripts, replies, cut-offs with
//! their cause, errors and finished turns.

use colloquy_conversation::{ClientEvent, ProviderCommand, TurnStatus, VoiceState};
use colloquy_model::{
    AgentCommand, ConversationEvent, ConversationState, InterruptCause, TurnId, TurnRecord, UnixMillis,
};
use colloquy_supervisor::ConversationEvents;

/// Watches one conversation's outputs and reports them.
#[derive(Debug)]
pub(crate) struct EventReporter {
    sink: ConversationEvents,
    /// What an interruption in the outputs being carried out was caused by. The core is
    /// synchronous: the outputs of one input are carried out before the next input, so a cut-off
    /// that follows an API command was caused by it.
    cause: InterruptCause,
    user_speaking: Option<TurnId>,
    agent_speaking: Option<TurnId>,
}

impl EventReporter {
    pub(crate) fn new(sink: ConversationEvents) -> EventReporter {
        EventReporter { sink, cause: InterruptCause::UserSpeech, user_speaking: None, agent_speaking: None }
    }

    /// The next outputs follow this command.
    pub(crate) fn command(&mut self, command: &AgentCommand) {
        self.cause = match command {
            AgentCommand::Speak { .. } => InterruptCause::ApiSpeak,
            AgentCommand::Think { .. } => InterruptCause::ApiThink,
            AgentCommand::Interrupt | AgentCommand::ClearHistory => InterruptCause::ApiInterrupt,
        };
    }

    /// The next outputs follow the last listened-to participant leaving.
    pub(crate) fn user_left(&mut self) {
        self.cause = InterruptCause::UserLeft;
    }

    /// The outputs of the last input are carried out.
    pub(crate) fn settled(&mut self) {
        self.cause = InterruptCause::UserSpeech;
    }

    fn send(&self, event: ConversationEvent, at: UnixMillis) {
        self.sink.send(event, at);
    }

    /// Called for every provider command, audio chunks included: the time is read only for the
    /// few that make an event.
    pub(crate) fn provider(&mut self, command: &ProviderCommand, at: impl FnOnce() -> UnixMillis) {
        if !self.sink.wanted() {
            return;
        }
        match *command {
            ProviderCommand::AsrStart { turn } => {
                self.user_speaking = Some(turn);
                self.send(ConversationEvent::UserSpeech { turn: turn.0, speaking: true }, at());
            }
            ProviderCommand::AsrFinish { turn } | ProviderCommand::AsrCancel { turn }
                if self.user_speaking == Some(turn) =>
            {
                self.user_speaking = None;
                self.send(ConversationEvent::UserSpeech { turn: turn.0, speaking: false }, at());
            }
            _ => {}
        }
    }

    pub(crate) fn client(&mut self, event: &ClientEvent, at: UnixMillis) {
        if let ClientEvent::State { state, .. } = event {
            self.sink.set_state(match state {
                VoiceState::Idle => ConversationState::Idle,
                VoiceState::Listening => ConversationState::Listening,
                VoiceState::Thinking => ConversationState::Thinking,
                VoiceState::Speaking => ConversationState::Speaking,
            });
        }
        if !self.sink.wanted() {
            return;
        }
        let event = match event {
            ClientEvent::UserTranscription { turn, text, is_final: true } => {
                ConversationEvent::UserTranscript { turn: turn.0, text: text.clone() }
            }
            ClientEvent::AssistantTranscription {
                turn,
                text,
                status: status @ (TurnStatus::Ended | TurnStatus::Interrupted),
            } => ConversationEvent::AgentReply {
                turn: turn.0,
                text: text.clone(),
                interrupted: *status == TurnStatus::Interrupted,
            },
            ClientEvent::Interrupted { turn } => ConversationEvent::Interrupted { turn: turn.0, cause: self.cause },
            ClientEvent::Error { turn, stage, message } => {
                ConversationEvent::Error { turn: turn.0, stage: stage.as_str(), message: message.clone() }
            }
            ClientEvent::ToolFinished { turn, call_id, name, duration_ms, end } => ConversationEvent::ToolCalled {
                turn: turn.0,
                call_id: call_id.clone(),
                name: name.clone(),
                duration_ms: *duration_ms,
                outcome: end.as_str(),
            },
            ClientEvent::State { turn, state } => {
                let speaking = *state == VoiceState::Speaking;
                match (self.agent_speaking, speaking) {
                    (None, true) => {
                        self.agent_speaking = Some(*turn);
                        ConversationEvent::AgentSpeech { turn: turn.0, speaking: true }
                    }
                    (Some(was), false) => {
                        self.agent_speaking = None;
                        ConversationEvent::AgentSpeech { turn: was.0, speaking: false }
                    }
                    _ => return,
                }
            }
            _ => return,
        };
        self.send(event, at);
    }

    pub(crate) fn turn(&mut self, record: &TurnRecord) {
        if self.sink.wanted() {
            self.send(ConversationEvent::TurnEnded(record.clone()), record.ended_at);
        }
    }
}

#[cfg(test)]
mod tests {
    use colloquy_conversation::Stage;
    use colloquy_model::{
        AgentEventKind, AgentId, AgentName, AgentRecord, AgentSpec, AgentState, AppId, Callbacks, ChannelName,
        SpeakPriority,
    };
    use tokio::sync::mpsc;

    use super::*;

    fn record(callbacks: bool) -> AgentRecord {
        let mut spec = AgentSpec::with_defaults(AgentName::new("a").unwrap(), ChannelName::new("c").unwrap());
        spec.callbacks = callbacks.then(|| Callbacks { url: "http://127.0.0.1:9/hook".into(), secret: None });
        AgentRecord {
            id: AgentId::from_string("id".into()),
            app: AppId::native(),
            spec,
            state: AgentState::Running,
            created_at: UnixMillis(0),
            stopped_at: None,
        }
    }

    fn drain(rx: &mut mpsc::Receiver<colloquy_model::AgentEvent>) -> Vec<ConversationEvent> {
        let mut events = Vec::new();
        while let Ok(event) = rx.try_recv() {
            let AgentEventKind::Conversation(event) = event.kind else { panic!("not a conversation event") };
            events.push(event);
        }
        events
    }

    #[test]
    fn outputs_become_events_with_the_cause_of_each_cut_off() {
        let (tx, mut rx) = mpsc::channel(64);
        let mut reporter = EventReporter::new(ConversationEvents::new(record(true), Some(tx)));
        let at = UnixMillis(1);
        let t = TurnId(1);
        reporter.provider(&ProviderCommand::AsrStart { turn: t }, || at);
        reporter.client(&ClientEvent::UserTranscription { turn: t, text: "hi".into(), is_final: false }, at);
        reporter.provider(&ProviderCommand::AsrFinish { turn: t }, || at);
        reporter.client(&ClientEvent::UserTranscription { turn: t, text: "hi there".into(), is_final: true }, at);
        reporter.client(&ClientEvent::State { turn: TurnId(2), state: VoiceState::Thinking }, at);
        reporter.client(&ClientEvent::State { turn: TurnId(2), state: VoiceState::Speaking }, at);
        reporter.command(&AgentCommand::Speak {
            text: "x".into(),
            priority: SpeakPriority::Interrupt,
            interruptible: true,
        });
        reporter.client(&ClientEvent::Interrupted { turn: TurnId(2) }, at);
        reporter.client(
            &ClientEvent::AssistantTranscription {
                turn: TurnId(2),
                text: "Hel".into(),
                status: TurnStatus::Interrupted,
            },
            at,
        );
        reporter.settled();
        reporter.client(&ClientEvent::State { turn: TurnId(3), state: VoiceState::Listening }, at);
        reporter.client(&ClientEvent::Interrupted { turn: TurnId(3) }, at);
        reporter.client(&ClientEvent::Error { turn: TurnId(3), stage: Stage::Tts, message: "down".into() }, at);
        assert_eq!(
            drain(&mut rx),
            [
                ConversationEvent::UserSpeech { turn: 1, speaking: true },
                ConversationEvent::UserSpeech { turn: 1, speaking: false },
                ConversationEvent::UserTranscript { turn: 1, text: "hi there".into() },
                ConversationEvent::AgentSpeech { turn: 2, speaking: true },
                ConversationEvent::Interrupted { turn: 2, cause: InterruptCause::ApiSpeak },
                ConversationEvent::AgentReply { turn: 2, text: "Hel".into(), interrupted: true },
                ConversationEvent::AgentSpeech { turn: 2, speaking: false },
                ConversationEvent::Interrupted { turn: 3, cause: InterruptCause::UserSpeech },
                ConversationEvent::Error { turn: 3, stage: "tts", message: "down".into() },
            ]
        );
    }

    #[test]
    fn an_agent_without_callbacks_reports_nothing() {
        let (tx, mut rx) = mpsc::channel(8);
        let mut reporter = EventReporter::new(ConversationEvents::new(record(false), Some(tx)));
        reporter.provider(&ProviderCommand::AsrStart { turn: TurnId(1) }, || UnixMillis(1));
        assert!(drain(&mut rx).is_empty());
    }
}
