//! Turns what the conversation does into [`ConversationEvent`]s for webhooks: the user's speech
//! starting and ending (the core asks ASR to start and finish), transcripts, replies, cut-offs with
//! their cause, errors and finished turns.

use colloquy_conversation::{ClientEvent, ProviderCommand, TurnStatus, VoiceState};
use colloquy_model::{AgentCommand, ConversationEvent, InterruptCause, TurnId, TurnRecord, UnixMillis};
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

    pub(crate) fn provider(&mut self, command: &ProviderCommand, at: UnixMillis) {
        if !self.sink.wanted() {
            return;
        }
        match *command {
            ProviderCommand::AsrStart { turn } => {
                self.user_speaking = Some(turn);
                self.send(ConversationEvent::UserSpeech { turn: turn.0, speaking: true }, at);
            }
            ProviderCommand::AsrFinish { turn } | ProviderCommand::AsrCancel { turn } => {
                if self.user_speaking.take() == Some(turn) {
                    self.send(ConversationEvent::UserSpeech { turn: turn.0, speaking: false }, at);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn client(&mut self, event: &ClientEvent, at: UnixMillis) {
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
