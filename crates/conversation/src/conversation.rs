//! The conversation of one agent as a state machine: [`Input`]s with their time go in through
//! [`Conversation::handle_input`] and [`Conversation::handle_timeout`]; [`Output`]s come out of
//! [`Conversation::poll_output`] in the order they must be carried out, ending with the
//! [`Output::Timeout`] at which the runtime must call `handle_timeout` again.
//!
//! Two things can be under way at once: the user's **utterance** (speech being recognised) and the
//! agent's **reply** (an answer being thought of and spoken). Each has its own [`TurnId`]; a reply to
//! an utterance takes the utterance's id. Whatever arrives for any other id is stale and dropped,
//! which is how a cancelled turn's late LLM text or TTS audio can never be played.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use colloquy_model::{
    AgentCommand, AgentSpec, DisabledStrategy, IdleTimeout, InterruptCause, InterruptionMode, PromptMessage,
    PromptRole, SilenceAction, Speaker, ThinkAction, TurnDetail, TurnEnd, TurnId, TurnMetrics, TurnStart,
};

use crate::clauses::ClauseSplitter;
use crate::io::{
    AsrInput, ClientEvent, Command, FRAME_DURATION, INPUT_RATE, Input, LeaveReason, LlmInput, Output, ProviderCommand,
    SpeakPriority, Stage, ToolCommand, TtsInput, TurnStatus, VoiceState,
};
use crate::playout::{Frame, Playout};
use crate::speech::{SpeechChange, SpeechDetector};

mod tools;
use tools::ToolRounds;

/// How long a reply may wait for its LLM or TTS without any progress before it counts as failed.
pub const PROVIDER_STALL: Duration = Duration::from_secs(20);
/// The most frames sent back to back to catch up when the runtime woke late; later than this, the
/// schedule starts again from now instead (a gap, never a burst).
const MAX_CATCH_UP_FRAMES: u32 = 3;

/// The user's speech being recognised.
#[derive(Debug)]
struct Utterance {
    turn: TurnId,
    /// When the speech began.
    began: Instant,
    /// The speech cut the agent off after this many milliseconds.
    interrupted_after_ms: Option<u32>,
    /// The speech began while the agent had a reply under way, and has not interrupted it (yet).
    over_reply: bool,
    /// The end of the last speech frame, once the speech has ended.
    speech_end: Option<Instant>,
    /// When the speech was judged over.
    ended_at: Option<Instant>,
    partial: String,
    final_text: Option<String>,
    final_at: Option<Instant>,
}

/// What a reply says: the LLM's answer, or a given text.
#[derive(Debug)]
enum Source {
    Llm { done: bool },
    Text,
}

/// The agent's answer under way: thinking (no audio yet) or speaking.
#[derive(Debug)]
struct Reply {
    turn: TurnId,
    start: TurnStart,
    started: Instant,
    interruptible: bool,
    source: Source,
    splitter: ClauseSplitter,
    playout: Playout,
    /// The earliest time the next frame may be sent.
    next_frame_at: Instant,
    /// The next frame's audio has not arrived: no playout deadline until it does.
    starved: bool,
    /// The last sign of life from a provider, or the last frame played.
    progress_at: Instant,
    /// An error ended the answer; the failure message (if any) is being said instead.
    failed: bool,
    times: Times,
    /// What cut it off.
    interrupted_by: Option<InterruptCause>,
    tools: ToolRounds,
}

/// When each stage of a turn reached its milestone.
#[derive(Clone, Copy, Debug, Default)]
struct Times {
    /// The user's speech that started the turn had cut off the previous reply after this long.
    interrupt_ms: Option<u32>,
    speech_start: Option<Instant>,
    speech_end: Option<Instant>,
    turn_end: Option<Instant>,
    asr_final: Option<Instant>,
    llm_start: Option<Instant>,
    llm_first_token: Option<Instant>,
    first_clause: Option<Instant>,
    tts_first_audio: Option<Instant>,
    first_frame: Option<Instant>,
    /// Waiting for tool calls, all rounds.
    tool_ms: Option<u32>,
}

fn ms(from: Option<Instant>, to: Option<Instant>) -> Option<u32> {
    Some(to?.saturating_duration_since(from?).as_millis().min(u128::from(u32::MAX)) as u32)
}

impl Times {
    fn metrics(&self) -> TurnMetrics {
        let ready = match (self.turn_end, self.asr_final) {
            (Some(end), Some(fin)) => Some(end.max(fin)),
            (end, fin) => end.or(fin),
        };
        // The engine's own time: from the user's words being ready to the LLM request (clauses go to
        // TTS the moment they are complete), and from the first audio to its frame being sent.
        let overhead = self
            .first_frame
            .map(|_| ms(ready, self.llm_start).unwrap_or(0) + ms(self.tts_first_audio, self.first_frame).unwrap_or(0));
        TurnMetrics {
            eou_delay_ms: ms(self.speech_end, self.turn_end),
            asr_ttlw_ms: ms(self.speech_end, self.asr_final),
            llm_ttft_ms: ms(self.llm_start, self.llm_first_token),
            llm_ttfs_ms: ms(self.llm_start, self.first_clause),
            tts_ttfb_ms: ms(self.first_clause, self.tts_first_audio),
            engine_overhead_ms: overhead,
            e2e_ms: ms(self.speech_end, self.first_frame),
            tool_ms: self.tool_ms,
        }
    }
}

/// Something queued for after the current reply: a `speak` with APPEND, or a `think` whose
/// action for the agent's state is [`ThinkAction::Append`].
#[derive(Debug)]
enum Queued {
    Speak { text: String, interruptible: bool },
    Think { text: String, interruptible: bool },
}

/// The conversation of one agent. See the module docs.
#[derive(Debug)]
pub struct Conversation {
    spec: AgentSpec,
    now: Instant,
    outputs: VecDeque<Output>,
    last_turn: u64,
    state: VoiceState,
    /// Listened-to participants in the channel.
    present: usize,
    greeted: bool,
    detector: SpeechDetector,
    /// The latest input audio, kept so the speech before the start was detected (and the prefix
    /// padding before that) reaches ASR.
    recent_audio: VecDeque<f32>,
    utterance: Option<Utterance>,
    reply: Option<Reply>,
    /// User words heard while the agent could not be interrupted, for the next turn (APPEND).
    carried_words: Vec<String>,
    queued: VecDeque<Queued>,
    /// `think` texts injected into what the user is saying, answered with it.
    injected: Vec<String>,
    /// Past messages for the LLM, oldest first.
    history: VecDeque<PromptMessage>,
    idle_deadline: Option<Instant>,
    silence_deadline: Option<Instant>,
    /// The silence prompt was used since the user last spoke: it comes once per silence.
    silence_prompted: bool,
}

impl Conversation {
    /// A conversation for an agent with `spec`, created at `now`, with nobody in the channel yet.
    pub fn new(spec: AgentSpec, now: Instant) -> Conversation {
        let mut conversation = Conversation {
            detector: SpeechDetector::new(spec.turn_detection),
            spec,
            now,
            outputs: VecDeque::new(),
            last_turn: 0,
            state: VoiceState::Idle,
            present: 0,
            greeted: false,
            recent_audio: VecDeque::new(),
            utterance: None,
            reply: None,
            carried_words: Vec::new(),
            queued: VecDeque::new(),
            injected: Vec::new(),
            history: VecDeque::new(),
            idle_deadline: None,
            silence_deadline: None,
            silence_prompted: false,
        };
        conversation.arm_idle_timeout();
        conversation
    }

    pub fn state(&self) -> VoiceState {
        self.state
    }

    /// The configuration in use, with updates applied.
    pub fn spec(&self) -> &AgentSpec {
        &self.spec
    }

    /// The next thing to do. Returns [`Output::Timeout`] when nothing is queued: call
    /// [`handle_timeout`](Self::handle_timeout) at that time, or [`handle_input`](Self::handle_input)
    /// when something happens before.
    pub fn poll_output(&mut self) -> Output {
        if let Some(output) = self.outputs.pop_front() {
            return output;
        }
        Output::Timeout(self.next_deadline())
    }

    /// Time has passed: sends the frames that are due and acts on expired timers.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.advance(now);
        if let Some(deadline) = self.idle_deadline
            && now >= deadline
        {
            self.idle_deadline = None;
            self.outputs.push_back(Output::Leave(LeaveReason::Idle));
        }
        if let Some(deadline) = self.silence_deadline
            && now >= deadline
        {
            self.silence_deadline = None;
            self.on_silence();
        }
        if let Some(utterance) = &self.utterance
            && let Some(end) = utterance.speech_end
            && now >= end + self.max_wait()
        {
            // The transcript is late: answer with what we have.
            self.finish_utterance();
        }
        self.on_tool_timers();
        if let Some(reply) = &self.reply
            && now >= reply.progress_at + PROVIDER_STALL
        {
            let stage = if matches!(reply.source, Source::Llm { done: false }) { Stage::Llm } else { Stage::Tts };
            self.fail_reply(stage, format!("no answer for {} s", PROVIDER_STALL.as_secs()));
        }
        self.pump_playout();
    }

    /// Something happened at `now`.
    pub fn handle_input(&mut self, now: Instant, input: Input) {
        self.advance(now);
        match input {
            Input::Audio(samples) => self.on_audio(samples),
            Input::Vad { probability, length } => self.on_vad(probability, length),
            Input::ParticipantJoined { present } => self.on_presence(present),
            Input::ParticipantLeft { present } => self.on_presence(present),
            Input::Asr(asr) => self.on_asr(asr),
            Input::Llm(llm) => self.on_llm(llm),
            Input::Tts(tts) => self.on_tts(tts),
            Input::Tool(tool) => self.on_tool(tool),
            Input::Command(command) => self.on_command(command),
        }
        self.pump_playout();
    }

    fn advance(&mut self, now: Instant) {
        // Time never runs backwards, whatever the caller's clock did.
        self.now = self.now.max(now);
    }

    fn next_deadline(&self) -> Instant {
        let mut deadlines = vec![self.idle_deadline, self.silence_deadline];
        if let Some(utterance) = &self.utterance {
            deadlines.push(utterance.speech_end.map(|end| end + self.max_wait()));
        }
        if let Some(reply) = &self.reply {
            deadlines.push(Some(reply.progress_at + PROVIDER_STALL));
            deadlines.push(reply.tools.next_deadline());
            if !reply.starved {
                deadlines.push(Some(reply.next_frame_at));
            }
        }
        deadlines.into_iter().flatten().min().unwrap_or(self.now + Duration::from_secs(3600))
    }

    fn max_wait(&self) -> Duration {
        Duration::from_millis(self.spec.turn_detection.max_wait_ms.into())
    }

    fn new_turn(&mut self) -> TurnId {
        self.last_turn += 1;
        TurnId(self.last_turn)
    }

    fn client(&mut self, event: ClientEvent) {
        self.outputs.push_back(Output::Client(event));
    }

    fn provider(&mut self, command: ProviderCommand) {
        self.outputs.push_back(Output::Provider(command));
    }

    fn set_state(&mut self, state: VoiceState) {
        if self.state != state {
            self.state = state;
            let turn = self.reply.as_ref().map(|r| r.turn).or(self.utterance.as_ref().map(|u| u.turn));
            self.client(ClientEvent::State { turn: turn.unwrap_or(TurnId(self.last_turn)), state });
        }
    }

    /// The state that follows from what is under way.
    fn settle_state(&mut self) {
        let state = match &self.reply {
            Some(reply) if reply.playout.started() => VoiceState::Speaking,
            Some(_) => VoiceState::Thinking,
            None if self.present == 0 => VoiceState::Idle,
            None => VoiceState::Listening,
        };
        self.set_state(state);
    }

    // ---- presence ----

    fn on_presence(&mut self, present: usize) {
        let was = self.present;
        self.present = present;
        if present > 0 && was == 0 {
            self.idle_deadline = None;
            if !self.greeted {
                self.greeted = true;
                if let Some(greeting) = self.spec.greeting.clone() {
                    let turn = self.new_turn();
                    self.start_text_reply(turn, TurnStart::Greeting, greeting.text, greeting.interruptible);
                }
            }
            self.settle_state();
        } else if present == 0 && was > 0 {
            // Nobody left to talk to: drop what is under way.
            if let Some(utterance) = self.utterance.take() {
                self.provider(ProviderCommand::AsrCancel { turn: utterance.turn });
            }
            self.detector.reset();
            self.interrupt_reply(Some(InterruptCause::UserLeft));
            self.queued.clear();
            self.silence_deadline = None;
            self.arm_idle_timeout();
            self.settle_state();
        }
    }

    fn arm_idle_timeout(&mut self) {
        if let IdleTimeout::AfterSecs(secs) = self.spec.idle_timeout {
            self.idle_deadline = Some(self.now + Duration::from_secs(secs.into()));
        }
    }

    // ---- the user's speech ----

    fn on_audio(&mut self, samples: Vec<f32>) {
        if let Some(utterance) = &self.utterance
            && utterance.speech_end.is_none()
        {
            let turn = utterance.turn;
            self.provider(ProviderCommand::AsrAudio { turn, samples });
            return;
        }
        let td = &self.spec.turn_detection;
        // Enough for the prefix padding, the speech needed to start a turn, and the VAD's delay.
        let keep_ms = td.prefix_padding_ms + td.min_speech_ms + 200;
        let keep = (keep_ms as usize) * (INPUT_RATE as usize) / 1000;
        self.recent_audio.extend(samples);
        let excess = self.recent_audio.len().saturating_sub(keep);
        self.recent_audio.drain(..excess);
    }

    fn on_vad(&mut self, probability: f32, length: Duration) {
        match self.detector.push(probability, self.now, length) {
            SpeechChange::None => {}
            SpeechChange::Started { began } => self.on_speech_started(began),
            SpeechChange::Ended { last_speech } => self.on_speech_ended(last_speech),
        }
        // Long enough speech over an interruptible reply cuts it off.
        let over_reply = self.utterance.as_ref().is_some_and(|u| u.over_reply && u.speech_end.is_none());
        if over_reply
            && self.reply_is_interruptible()
            && self.spec.interruption.mode == InterruptionMode::StartOfSpeech
            && self.detector.speech_duration() >= Duration::from_millis(self.spec.interruption.min_speech_ms.into())
        {
            self.barge_in();
        }
    }

    fn reply_is_interruptible(&self) -> bool {
        self.spec.interruption.enabled && self.reply.as_ref().is_some_and(|r| r.interruptible)
    }

    fn on_speech_started(&mut self, began: Instant) {
        if let Some(old) = self.utterance.take() {
            // Speech again before the last utterance's transcript came: that one is finished with
            // what it has, and this speech is a new utterance.
            self.utterance = Some(old);
            self.finish_utterance();
        }
        self.silence_deadline = None;
        self.silence_prompted = false;
        let turn = self.new_turn();
        self.provider(ProviderCommand::AsrStart { turn });
        let padding = Duration::from_millis(self.spec.turn_detection.prefix_padding_ms.into());
        let wanted = self.now.saturating_duration_since(began) + padding;
        let n = ((wanted.as_secs_f64() * f64::from(INPUT_RATE)) as usize).min(self.recent_audio.len());
        let samples: Vec<f32> = self.recent_audio.drain(self.recent_audio.len() - n..).collect();
        self.recent_audio.clear();
        if !samples.is_empty() {
            self.provider(ProviderCommand::AsrAudio { turn, samples });
        }
        self.utterance = Some(Utterance {
            turn,
            began,
            interrupted_after_ms: None,
            over_reply: self.reply.is_some(),
            speech_end: None,
            ended_at: None,
            partial: String::new(),
            final_text: None,
            final_at: None,
        });
    }

    fn on_speech_ended(&mut self, last_speech: Instant) {
        let interruptible = self.reply_is_interruptible();
        let mode = self.spec.interruption.mode;
        let strategy = self.spec.interruption.when_disabled;
        let now = self.now;
        let Some(utterance) = self.utterance.as_mut() else { return };
        utterance.speech_end = Some(last_speech);
        utterance.ended_at = Some(now);
        let turn = utterance.turn;
        if utterance.over_reply && self.reply.is_some() {
            // Speech over the agent that did not cut it off.
            let drop = if interruptible {
                // Too short to interrupt (a cough, an "mhm") in start-of-speech mode; in keywords
                // mode the transcript decides.
                mode == InterruptionMode::StartOfSpeech
            } else {
                strategy == DisabledStrategy::Ignore
            };
            if drop {
                self.utterance = None;
                self.provider(ProviderCommand::AsrCancel { turn });
                return;
            }
        }
        self.provider(ProviderCommand::AsrFinish { turn });
        if self.utterance.as_ref().is_some_and(|u| u.final_text.is_some()) {
            self.finish_utterance();
        }
    }

    fn on_asr(&mut self, asr: AsrInput) {
        let (turn, text) = match &asr {
            AsrInput::Partial { turn, text } | AsrInput::Final { turn, text } => (*turn, text.clone()),
            AsrInput::Failed { turn, .. } => (*turn, String::new()),
        };
        let Some(utterance) = self.utterance.as_mut().filter(|u| u.turn == turn) else { return };
        match asr {
            AsrInput::Partial { .. } => {
                utterance.partial = text.clone();
                self.client(ClientEvent::UserTranscription { turn, text: text.clone(), is_final: false });
                self.check_keywords(&text);
            }
            AsrInput::Final { .. } => {
                utterance.final_text = Some(text.clone());
                utterance.final_at = Some(self.now);
                self.check_keywords(&text);
                if self.utterance.as_ref().is_some_and(|u| u.speech_end.is_some()) {
                    self.finish_utterance();
                }
            }
            AsrInput::Failed { error, .. } => {
                self.utterance = None;
                self.client(ClientEvent::Error { turn, stage: Stage::Asr, message: error });
                self.settle_state();
            }
        }
    }

    /// In keywords mode, a keyword heard over an interruptible reply cuts it off.
    fn check_keywords(&mut self, text: &str) {
        let interruption = &self.spec.interruption;
        if interruption.mode != InterruptionMode::Keywords
            || !self.reply_is_interruptible()
            || !self.utterance.as_ref().is_some_and(|u| u.over_reply)
        {
            return;
        }
        let words = crate::words(text);
        let heard = interruption.keywords.iter().any(|keyword| {
            let keyword = crate::words(keyword);
            !keyword.is_empty() && words.windows(keyword.len()).any(|w| w == keyword.as_slice())
        });
        if heard {
            self.barge_in();
        }
    }

    /// The utterance is over (its final transcript came, or waiting for it took too long): it
    /// becomes the user's turn, or joins the next one, or is dropped.
    fn finish_utterance(&mut self) {
        let Some(utterance) = self.utterance.take() else { return };
        let turn = utterance.turn;
        let text = utterance.final_text.clone().unwrap_or_else(|| utterance.partial.clone());
        let text = text.trim().to_owned();
        if utterance.final_text.is_none() {
            self.provider(ProviderCommand::AsrCancel { turn });
        }
        if !text.is_empty() {
            self.client(ClientEvent::UserTranscription { turn, text: text.clone(), is_final: true });
        }
        if utterance.over_reply && self.reply.is_some() {
            // Not an interruption (keywords mode without a keyword, or interruption off).
            if self.spec.interruption.when_disabled == DisabledStrategy::Append && !text.is_empty() {
                self.carried_words.push(text);
            }
            return;
        }
        let mut words = std::mem::take(&mut self.carried_words);
        words.extend((!text.is_empty()).then_some(text));
        words.append(&mut self.injected);
        if words.is_empty() {
            self.settle_state();
            return;
        }
        let times = Times {
            speech_start: Some(utterance.began),
            interrupt_ms: utterance.interrupted_after_ms,
            speech_end: utterance.speech_end,
            turn_end: utterance.ended_at,
            asr_final: utterance.final_at,
            ..Times::default()
        };
        self.start_llm_reply(turn, TurnStart::VoiceInput, words.join(" "), true, times);
    }

    // ---- the agent's replies ----

    fn new_reply(&mut self, turn: TurnId, start: TurnStart, interruptible: bool, source: Source, times: Times) {
        // One reply at a time: a new one cuts off what is under way.
        let cause = match start {
            TurnStart::ApiSpeak => Some(InterruptCause::ApiSpeak),
            TurnStart::ApiThink => Some(InterruptCause::ApiThink),
            TurnStart::VoiceInput => Some(InterruptCause::UserSpeech),
            TurnStart::Greeting | TurnStart::SilencePrompt => None,
        };
        self.interrupt_reply(cause);
        self.silence_deadline = None;
        self.reply = Some(Reply {
            turn,
            start,
            started: self.now,
            interruptible,
            source,
            splitter: ClauseSplitter::new(),
            playout: Playout::default(),
            next_frame_at: self.now,
            starved: true,
            progress_at: self.now,
            failed: false,
            times,
            interrupted_by: None,
            tools: ToolRounds::default(),
        });
        self.settle_state();
    }

    /// Answers `user_text` with the LLM.
    fn start_llm_reply(
        &mut self,
        turn: TurnId,
        start: TurnStart,
        user_text: String,
        interruptible: bool,
        mut times: Times,
    ) {
        self.outputs.push_back(Output::History {
            turn,
            speaker: Speaker::User,
            content: user_text.clone(),
            interrupted: false,
        });
        let mut messages = self.spec.llm.system_messages.clone();
        let window = self.spec.max_history as usize;
        messages.extend(self.history.iter().skip(self.history.len().saturating_sub(window)).cloned());
        let user = PromptMessage { role: PromptRole::User, content: user_text };
        messages.push(user.clone());
        self.remember(user);
        times.llm_start = Some(self.now);
        self.new_reply(turn, start, interruptible, Source::Llm { done: false }, times);
        self.ask_llm(turn, messages);
    }

    /// Says `text` without the LLM.
    fn start_text_reply(&mut self, turn: TurnId, start: TurnStart, text: String, interruptible: bool) {
        self.new_reply(turn, start, interruptible, Source::Text, Times::default());
        let mut clauses = self.reply.as_mut().map(|r| r.splitter.push(&text)).unwrap_or_default();
        clauses.extend(self.reply.as_mut().and_then(|r| r.splitter.finish()));
        for clause in clauses {
            self.send_clause(clause);
        }
        match self.reply.as_mut() {
            Some(reply) if reply.playout.clause_count() > 0 => reply.playout.close(),
            _ => self.end_reply(TurnEnd::Ok),
        }
    }

    fn remember(&mut self, message: PromptMessage) {
        self.history.push_back(message);
        let cap = (self.spec.max_history as usize).max(1);
        while self.history.len() > cap {
            self.history.pop_front();
        }
    }

    fn send_clause(&mut self, text: String) {
        let now = self.now;
        let (voice, speed) = (self.spec.tts.voice.clone(), self.spec.tts.speed);
        let Some(reply) = self.reply.as_mut() else { return };
        reply.times.first_clause.get_or_insert(now);
        let clause = reply.playout.add_clause(text.clone());
        let turn = reply.turn;
        self.provider(ProviderCommand::TtsSpeak { turn, clause, text, voice, speed });
    }

    fn current_reply(&mut self, turn: TurnId) -> Option<&mut Reply> {
        self.reply.as_mut().filter(|r| r.turn == turn)
    }

    fn on_llm(&mut self, llm: LlmInput) {
        let now = self.now;
        match llm {
            LlmInput::Delta { turn, text } => {
                let Some(reply) = self.current_reply(turn).filter(|r| !r.failed) else { return };
                reply.progress_at = now;
                reply.times.llm_first_token.get_or_insert(now);
                reply.tools.heard(&text);
                let clauses = reply.splitter.push(&text);
                for clause in clauses {
                    self.send_clause(clause);
                }
            }
            LlmInput::ToolCall { turn, call } => self.on_tool_call(turn, call),
            LlmInput::Done { turn, .. } => {
                let Some(reply) = self.current_reply(turn).filter(|r| !r.failed) else { return };
                reply.progress_at = now;
                reply.source = Source::Llm { done: true };
                if let Some(rest) = reply.splitter.finish() {
                    self.send_clause(rest);
                }
                if self.start_tool_round(turn) {
                    return;
                }
                let Some(reply) = self.current_reply(turn) else { return };
                reply.playout.close();
                if reply.playout.clause_count() == 0 {
                    // The model had nothing to say.
                    self.end_reply(TurnEnd::Ok);
                }
            }
            LlmInput::Failed { turn, error } => {
                if self.current_reply(turn).is_some_and(|r| !r.failed) {
                    self.fail_reply(Stage::Llm, error);
                }
            }
        }
    }

    fn on_tts(&mut self, tts: TtsInput) {
        let now = self.now;
        match tts {
            TtsInput::Audio { turn, clause, pcm } => {
                let Some(reply) = self.current_reply(turn) else { return };
                reply.progress_at = now;
                reply.times.tts_first_audio.get_or_insert(now);
                reply.playout.add_audio(clause, &pcm);
                reply.starved = false;
            }
            TtsInput::Done { turn, clause } => {
                let Some(reply) = self.current_reply(turn) else { return };
                reply.progress_at = now;
                reply.playout.complete(clause);
                reply.starved = false;
            }
            TtsInput::Failed { turn, error, .. } => {
                if self.current_reply(turn).is_some() {
                    self.fail_reply(Stage::Tts, error);
                }
            }
        }
    }

    /// Sends the frames that are due, and ends the reply when all of it was played.
    fn pump_playout(&mut self) {
        let now = self.now;
        let mut sent = 0;
        loop {
            let Some(reply) = self.reply.as_mut() else { return };
            if reply.starved || reply.next_frame_at > now || sent == MAX_CATCH_UP_FRAMES {
                return;
            }
            match reply.playout.next_frame() {
                Frame::Audio { pcm, starts_clause } => {
                    let first = reply.times.first_frame.is_none();
                    reply.times.first_frame.get_or_insert(now);
                    reply.progress_at = now;
                    // Late by more than the catch-up allows: start the schedule again from now.
                    let behind = now.saturating_duration_since(reply.next_frame_at);
                    let base = if behind > FRAME_DURATION * MAX_CATCH_UP_FRAMES { now } else { reply.next_frame_at };
                    reply.next_frame_at = base + FRAME_DURATION;
                    let turn = reply.turn;
                    let text = starts_clause.then(|| reply.playout.text_started());
                    let metrics = reply.times.metrics();
                    self.outputs.push_back(Output::Play { turn, pcm });
                    sent += 1;
                    if first {
                        self.settle_state();
                        self.client(ClientEvent::Metrics { turn, metrics });
                    }
                    if let Some(text) = text {
                        self.client(ClientEvent::AssistantTranscription { turn, text, status: TurnStatus::InProgress });
                    }
                }
                Frame::Waiting => {
                    reply.starved = true;
                    return;
                }
                Frame::Finished => {
                    let end = if reply.failed { TurnEnd::Error } else { TurnEnd::Ok };
                    self.end_reply(end);
                    return;
                }
            }
        }
    }

    /// The reply is over: records it and moves on to what is queued.
    fn end_reply(&mut self, end: TurnEnd) {
        self.close_reply(end);
        self.after_reply();
    }

    /// Ends the reply under way, if any: cancels its providers when cut off, and records what was
    /// said (or heard).
    fn close_reply(&mut self, end: TurnEnd) {
        let Some(reply) = self.reply.take() else { return };
        let turn = reply.turn;
        let interrupted = end == TurnEnd::Interrupted;
        let text = if interrupted || reply.failed { reply.playout.text_heard() } else { reply.playout.full_text() };
        if interrupted {
            self.provider(ProviderCommand::TtsCancel { turn });
            if matches!(reply.source, Source::Llm { done: false }) {
                self.provider(ProviderCommand::LlmCancel { turn });
            }
            self.client(ClientEvent::Interrupted { turn });
        }
        if reply.tools.running() {
            self.outputs.push_back(Output::Tool(ToolCommand::Cancel { turn }));
            let cancelled = reply.tools.cancelled(turn, self.now);
            self.outputs.extend(cancelled.into_iter().map(Output::Client));
        }
        if !text.is_empty() || interrupted {
            let status = if interrupted { TurnStatus::Interrupted } else { TurnStatus::Ended };
            self.client(ClientEvent::AssistantTranscription { turn, text: text.clone(), status });
        }
        if !text.is_empty() {
            self.outputs.push_back(Output::History {
                turn,
                speaker: Speaker::Assistant,
                content: text.clone(),
                interrupted,
            });
            self.remember(PromptMessage { role: PromptRole::Assistant, content: text });
        }
        let played_ms = reply.playout.played_samples() as u64 * 1000 / u64::from(crate::io::PLAYOUT_RATE);
        let detail = TurnDetail {
            speech_duration_ms: ms(reply.times.speech_start, reply.times.speech_end),
            playback_ms: Some(played_ms.min(u64::from(u32::MAX)) as u32),
            // The greeting is said once, on the first join.
            greeting_nth: (reply.start == TurnStart::Greeting).then_some(1),
            interrupted_by: reply.interrupted_by.filter(|_| interrupted),
            interrupt_duration_ms: reply.times.interrupt_ms,
        };
        self.outputs.push_back(Output::Turn {
            turn,
            start: reply.start,
            end,
            started: reply.started,
            ended: self.now,
            metrics: reply.times.metrics(),
            detail,
        });
        if reply.tools.ends_call() && end != TurnEnd::Interrupted {
            self.outputs.push_back(Output::Leave(LeaveReason::EndedByAgent));
        }
    }

    /// Cuts off the reply under way, if any, saying why.
    fn interrupt_reply(&mut self, cause: Option<InterruptCause>) {
        if let Some(reply) = self.reply.as_mut() {
            reply.interrupted_by = cause;
        }
        self.close_reply(TurnEnd::Interrupted);
    }

    /// What follows a reply: queued speech, words carried over, or listening (with the silence
    /// prompt armed).
    fn after_reply(&mut self) {
        if let Some(utterance) = self.utterance.as_mut() {
            // Speech that began over the reply is now ordinary speech.
            utterance.over_reply = false;
        }
        if let Some(next) = self.queued.pop_front() {
            let turn = self.new_turn();
            match next {
                Queued::Speak { text, interruptible } => {
                    self.start_text_reply(turn, TurnStart::ApiSpeak, text, interruptible)
                }
                Queued::Think { text, interruptible } => {
                    self.start_llm_reply(turn, TurnStart::ApiThink, text, interruptible, Times::default())
                }
            }
            return;
        }
        if self.utterance.is_none() && !self.carried_words.is_empty() {
            let words = std::mem::take(&mut self.carried_words).join(" ");
            let turn = self.new_turn();
            self.start_llm_reply(turn, TurnStart::VoiceInput, words, true, Times::default());
            return;
        }
        if let Some(utterance) = &self.utterance
            && utterance.speech_end.is_some()
            && utterance.final_text.is_some()
        {
            self.finish_utterance();
            return;
        }
        if let Some(prompt) = &self.spec.silence_prompt
            && self.present > 0
            && self.utterance.is_none()
            && !self.silence_prompted
        {
            self.silence_deadline = Some(self.now + Duration::from_millis(prompt.timeout_ms.into()));
        }
        self.settle_state();
    }

    /// The user cut the agent off.
    fn barge_in(&mut self) {
        let spoken = self.detector.speech_duration().as_millis().min(u128::from(u32::MAX)) as u32;
        if let Some(utterance) = self.utterance.as_mut() {
            utterance.over_reply = false;
            utterance.interrupted_after_ms = Some(spoken);
        }
        self.queued.clear();
        self.interrupt_reply(Some(InterruptCause::UserSpeech));
        self.settle_state();
    }

    /// The LLM or TTS failed: tell the clients, and say the failure message if there is one.
    fn fail_reply(&mut self, stage: Stage, message: String) {
        let Some(reply) = self.reply.as_mut() else { return };
        let turn = reply.turn;
        let llm_running = matches!(reply.source, Source::Llm { done: false });
        self.client(ClientEvent::Error { turn, stage, message });
        if llm_running {
            self.provider(ProviderCommand::LlmCancel { turn });
        }
        self.provider(ProviderCommand::TtsCancel { turn });
        let failure = self.spec.failure_message.clone().filter(|_| !self.reply.as_ref().is_some_and(|r| r.failed));
        let Some(reply) = self.reply.as_mut() else { return };
        reply.failed = true;
        reply.source = Source::Text;
        reply.splitter.clear();
        match failure {
            Some(text) => {
                // What was heard stays heard (and is recorded); the failure message replaces the
                // rest, under a new turn id that keeps the cancelled TTS work of the old one out.
                let (start, interruptible) = (reply.start, reply.interruptible);
                self.close_reply(TurnEnd::Error);
                let next = self.new_turn();
                self.start_text_reply(next, start, text, interruptible);
                if let Some(reply) = self.reply.as_mut() {
                    reply.failed = true;
                }
            }
            None => self.end_reply(TurnEnd::Error),
        }
    }

    // ---- commands and timers ----

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Agent(AgentCommand::Speak { text, priority, interruptible }) => {
                let busy = self.reply.is_some();
                match priority {
                    SpeakPriority::Interrupt => {
                        self.queued.clear();
                        let turn = self.new_turn();
                        self.start_text_reply(turn, TurnStart::ApiSpeak, text, interruptible);
                    }
                    SpeakPriority::Append if busy => self.queued.push_back(Queued::Speak { text, interruptible }),
                    SpeakPriority::Ignore if busy || self.utterance.is_some() => {}
                    SpeakPriority::Append | SpeakPriority::Ignore => {
                        let turn = self.new_turn();
                        self.start_text_reply(turn, TurnStart::ApiSpeak, text, interruptible);
                    }
                }
            }
            Command::Agent(AgentCommand::Interrupt) => {
                self.queued.clear();
                if self.reply.is_some() {
                    self.interrupt_reply(Some(InterruptCause::ApiInterrupt));
                    self.settle_state();
                }
            }
            Command::Agent(AgentCommand::Think { text, handling }) => {
                let action = match &self.reply {
                    Some(reply) if reply.playout.started() => handling.speaking,
                    Some(_) => handling.thinking,
                    None => handling.listening,
                };
                let interruptible = handling.interruptible;
                match action {
                    ThinkAction::Ignore => {}
                    ThinkAction::Append if self.reply.is_some() => {
                        self.queued.push_back(Queued::Think { text, interruptible })
                    }
                    ThinkAction::Inject if self.utterance.is_some() => self.injected.push(text),
                    ThinkAction::Interrupt | ThinkAction::Append | ThinkAction::Inject => {
                        self.queued.clear();
                        let turn = self.new_turn();
                        self.start_llm_reply(turn, TurnStart::ApiThink, text, interruptible, Times::default());
                    }
                }
            }
            Command::Agent(AgentCommand::ClearHistory) => {
                // The conversation so far, and any earlier exchange given in the prompt.
                self.history.clear();
                self.spec.llm.system_messages.retain(|m| m.role == PromptRole::System);
            }
            Command::Update(update) => update.apply_to(&mut self.spec),
        }
    }

    fn on_silence(&mut self) {
        if self.reply.is_some() || self.utterance.is_some() || self.present == 0 {
            return;
        }
        let Some(prompt) = self.spec.silence_prompt.clone() else { return };
        self.silence_prompted = true;
        let turn = self.new_turn();
        match prompt.action {
            SilenceAction::Speak => self.start_text_reply(turn, TurnStart::SilencePrompt, prompt.content, true),
            SilenceAction::Think => {
                self.start_llm_reply(turn, TurnStart::SilencePrompt, prompt.content, true, Times::default())
            }
        }
    }
}
