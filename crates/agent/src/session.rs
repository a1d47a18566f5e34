//! One live agent: the loop that feeds its [`Conversation`] from the channel, the providers, the API
//! and the clock, and carries out what the conversation asks.
//!
//! The loop owns the conversation and is the only thing that touches it. Provider work runs in tasks
//! of its own and reports back through one bounded queue as conversation inputs; every report
//! carries its turn id, and the conversation drops what belongs to a cancelled turn. TTS runs
//! clause after clause in one task per agent, so audio comes back in order.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use colloquy_conversation::{
    AsrInput, ClientEvent, Command, Conversation, Input, LlmInput, Output, PLAYOUT_RATE, ProviderCommand, TtsInput,
};
use colloquy_model::{
    AgentId, AgentRecord, ExitReason, HistoryEntry, PromptMessage, RemoteUids, TurnId, TurnRecord, UnixMillis,
};
use colloquy_providers::asr::{AsrEvent, AsrRequest};
use colloquy_providers::llm::{ChatMessage, LlmEvent, LlmRequest};
use colloquy_providers::tts::TtsRequest;
use colloquy_providers::vad::VadSession;
use colloquy_rtc::server::{AgentHandle, ChannelEvent};
use colloquy_store::Store;
use colloquy_supervisor::{ConversationEvents, MediaCommand, TurnStats};
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;

use crate::audio::{Downsampler, Mixer, VadFramer};
use crate::events::EventReporter;
use crate::protocol::client_message;
use crate::stack::Stack;
use crate::tools::ToolRunner;

/// How many provider reports may wait for the loop.
const PROVIDER_QUEUE: usize = 1024;
/// Audio chunks an utterance's recogniser may fall behind by before chunks are dropped (~10 s).
const ASR_QUEUE: usize = 500;
/// Clauses waiting for TTS. A turn sends at most a few dozen; beyond this the clause is dropped and
/// the turn fails over to its failure message.
const TTS_QUEUE: usize = 256;

/// What a session needs from the runtime.
#[derive(Debug)]
pub(crate) struct SessionParts {
    pub agent: AgentRecord,
    pub stack: Stack,
    pub events: mpsc::Receiver<ChannelEvent>,
    pub handle: AgentHandle,
    pub commands: mpsc::Receiver<MediaCommand>,
    pub store: Store,
    pub stats: Arc<TurnStats>,
    /// Where webhook-worthy events go.
    pub conversation_events: ConversationEvents,
    /// Set by the loop while it handles something (ms since `heartbeat_base`), zero while it waits:
    /// the watchdog reads it.
    pub busy_since: Arc<AtomicU64>,
    pub heartbeat_base: Instant,
}

/// The utterance being recognised.
#[derive(Debug)]
struct AsrWork {
    turn: TurnId,
    /// Dropped when the utterance is over.
    audio: Option<mpsc::Sender<Vec<f32>>>,
    task: AbortHandle,
}

/// A record for the store, written in order by the records task.
#[derive(Debug)]
enum Record {
    History(HistoryEntry),
    Turn(TurnRecord),
}

/// Maps the loop's monotonic clock to wall-clock milliseconds for records.
#[derive(Clone, Copy, Debug)]
struct Clock {
    base: Instant,
    base_unix_ms: i64,
}

impl Clock {
    fn new() -> Clock {
        Clock { base: Instant::now(), base_unix_ms: colloquy_supervisor::now().0 }
    }

    fn unix(&self, at: std::time::Instant) -> UnixMillis {
        let since = at.saturating_duration_since(self.base.into_std()).as_millis() as i64;
        UnixMillis(self.base_unix_ms + since)
    }
}

pub(crate) struct Session {
    agent_id: AgentId,
    agent_uid: String,
    listen: RemoteUids,
    language: String,
    conversation: Conversation,
    stack: Stack,
    handle: AgentHandle,
    clock: Clock,
    present: HashSet<String>,
    mixer: Mixer,
    downsampler: Downsampler,
    framer: VadFramer,
    vad: Box<dyn VadSession>,
    reports_tx: mpsc::Sender<Input>,
    asr: Option<AsrWork>,
    llm: Option<(TurnId, AbortHandle)>,
    tts_jobs: mpsc::Sender<(u32, TtsRequest)>,
    /// Every turn up to this one is cancelled: the TTS task skips and stops its clauses.
    tts_cancelled: Arc<AtomicU64>,
    tools: ToolRunner,
    records: mpsc::UnboundedSender<Record>,
    stats: Arc<TurnStats>,
    reporter: EventReporter,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("agent_id", &self.agent_id).finish_non_exhaustive()
    }
}

/// Runs the agent until it should leave; returns why.
pub(crate) async fn run(parts: SessionParts) -> ExitReason {
    let SessionParts {
        agent,
        stack,
        mut events,
        handle,
        mut commands,
        store,
        stats,
        conversation_events,
        busy_since,
        heartbeat_base,
    } = parts;
    let (reports_tx, mut reports) = mpsc::channel(PROVIDER_QUEUE);
    let (tts_jobs, tts_rx) = mpsc::channel(TTS_QUEUE);
    let tts_cancelled = Arc::new(AtomicU64::new(0));
    let tts_task = tokio::spawn(synthesize_clauses(stack.clone(), tts_rx, reports_tx.clone(), tts_cancelled.clone()));
    let (records, records_rx) = mpsc::unbounded_channel();
    let records_task = tokio::spawn(write_records(store, agent.id.clone(), records_rx));

    let clock = Clock::new();
    let mut session = Session {
        agent_id: agent.id.clone(),
        agent_uid: agent.spec.agent_uid.to_string(),
        listen: agent.spec.remote_uids.clone(),
        language: agent.spec.asr.language.clone(),
        conversation: Conversation::new(agent.spec.clone(), clock.base.into_std()),
        vad: stack.vad.session(),
        tools: ToolRunner::new(
            agent.id.to_string(),
            agent.spec.callbacks.as_ref().and_then(|c| c.secret.clone()),
            reports_tx.clone(),
            handle.clone(),
            agent.spec.agent_uid.to_string(),
        ),
        stack,
        handle,
        clock,
        present: HashSet::new(),
        mixer: Mixer::default(),
        downsampler: Downsampler::new(),
        framer: VadFramer::default(),
        reports_tx,
        asr: None,
        llm: None,
        tts_jobs,
        tts_cancelled,
        records,
        stats,
        reporter: EventReporter::new(conversation_events),
    };

    // The deadline the loop last slept until, when a timeout woke it: frames sent then are late by
    // the time the wake-up took.
    let mut woke_late_by = Duration::ZERO;
    let reason = loop {
        let deadline = match session.carry_out(woke_late_by).await {
            Ok(deadline) => deadline,
            Err(reason) => break reason,
        };
        busy_since.store(0, Ordering::Relaxed);
        let woke: Woke = tokio::select! {
            command = commands.recv() => Woke::Command(command),
            event = events.recv() => Woke::Channel(event),
            Some(report) = reports.recv() => Woke::Report(report),
            () = tokio::time::sleep_until(deadline.into()) => Woke::Timeout,
        };
        let now = Instant::now();
        woke_late_by = match woke {
            Woke::Timeout => now.into_std().saturating_duration_since(deadline),
            _ => Duration::ZERO,
        };
        busy_since.store(now.duration_since(heartbeat_base).as_millis().max(1) as u64, Ordering::Relaxed);
        match woke {
            Woke::Command(None | Some(MediaCommand::Stop)) => break ExitReason::Left,
            Woke::Command(Some(MediaCommand::Agent(command))) => {
                session.reporter.command(&command);
                session.input(Input::Command(Command::Agent(command)));
            }
            Woke::Command(Some(MediaCommand::Update(update))) => session.input(Input::Command(Command::Update(update))),
            Woke::Channel(None) => break ExitReason::Error("the channel server stopped".into()),
            Woke::Channel(Some(event)) => session.on_channel(event),
            Woke::Report(report) => session.input(report),
            Woke::Timeout => session.conversation.handle_timeout(now.into_std()),
        }
    };
    session.cancel_all();
    tts_task.abort();
    drop(session);
    // The records written so far reach the store before the agent is reported over.
    let _ = records_task.await;
    reason
}

enum Woke {
    Command(Option<MediaCommand>),
    Channel(Option<ChannelEvent>),
    Report(Input),
    Timeout,
}

impl Session {
    fn input(&mut self, input: Input) {
        self.conversation.handle_input(std::time::Instant::now(), input);
    }

    fn listens_to(&self, uid: &str) -> bool {
        match &self.listen {
            RemoteUids::Any => true,
            RemoteUids::Only(uids) => uids.iter().any(|u| u.as_str() == uid),
        }
    }

    fn on_channel(&mut self, event: ChannelEvent) {
        match event {
            ChannelEvent::Joined { uid, agent: false } if self.listens_to(&uid) => {
                self.present.insert(uid);
                self.input(Input::ParticipantJoined { present: self.present.len() });
            }
            ChannelEvent::Left { uid, agent: false, .. } if self.present.remove(&uid) => {
                if self.present.is_empty() {
                    self.reporter.user_left();
                }
                self.input(Input::ParticipantLeft { present: self.present.len() });
            }
            ChannelEvent::Audio { from, pcm } => {
                for frame in self.mixer.push(&from, pcm, self.present.len()) {
                    let samples = self.downsampler.process(&frame);
                    let now = std::time::Instant::now();
                    for vad_frame in self.framer.push(&samples) {
                        // A failed VAD frame counts as silence: the agent hears less, it does not stop.
                        let probability = self.vad.probability(&vad_frame).unwrap_or_else(|e| {
                            tracing::warn!(agent_id = %self.agent_id, error = %e, "VAD failed on a frame");
                            0.0
                        });
                        let length = Duration::from_millis(32);
                        self.conversation.handle_input(now, Input::Vad { probability, length });
                    }
                    self.conversation.handle_input(now, Input::Audio(samples));
                }
            }
            ChannelEvent::Data { from, text } => match self.tools.client_result(&text) {
                Some(result) => self.input(result),
                None => {
                    tracing::debug!(agent_id = %self.agent_id, %from, bytes = text.len(), "data message from a participant")
                }
            },
            _ => {}
        }
    }

    /// Carries out every output the conversation has; returns its next deadline, or why the agent
    /// must leave.
    async fn carry_out(&mut self, late_by: Duration) -> Result<std::time::Instant, ExitReason> {
        loop {
            match self.conversation.poll_output() {
                Output::Timeout(deadline) => {
                    self.reporter.settled();
                    return Ok(deadline);
                }
                Output::Provider(command) => {
                    let clock = self.clock;
                    self.reporter.provider(&command, || clock.unix(std::time::Instant::now()));
                    self.provider(command);
                }
                Output::Play { pcm, .. } => {
                    self.stats.frame_sent(late_by);
                    self.handle.publish(pcm).await;
                }
                Output::Client(event) => {
                    if let ClientEvent::Metrics { metrics, .. } = &event {
                        self.stats.observe(metrics);
                    }
                    let now = self.clock.unix(std::time::Instant::now());
                    self.reporter.client(&event, now);
                    self.handle.send_data(None, client_message(&event, &self.agent_uid, now.0)).await;
                }
                Output::History { turn, speaker, content, interrupted } => {
                    let at = self.clock.unix(std::time::Instant::now());
                    let entry = HistoryEntry { turn_id: turn.0, speaker, content, interrupted, at };
                    let _ = self.records.send(Record::History(entry));
                }
                Output::Turn { turn, start, end, started, ended, metrics, detail } => {
                    let record = TurnRecord {
                        turn_id: turn.0,
                        start,
                        end,
                        started_at: self.clock.unix(started),
                        ended_at: self.clock.unix(ended),
                        metrics,
                        detail,
                    };
                    self.stats.turn_ended(end);
                    self.reporter.turn(&record);
                    let _ = self.records.send(Record::Turn(record));
                }
                Output::Tool(command) => self.tools.handle(command, &self.conversation.spec().tools),
                Output::Leave(colloquy_conversation::LeaveReason::Idle) => return Err(ExitReason::IdleTimeout),
                Output::Leave(colloquy_conversation::LeaveReason::EndedByAgent) => {
                    return Err(ExitReason::EndedByAgent);
                }
            }
        }
    }

    fn provider(&mut self, command: ProviderCommand) {
        match command {
            ProviderCommand::AsrStart { turn } => {
                self.cancel_asr();
                let (audio_tx, audio) = mpsc::channel(ASR_QUEUE);
                let request = AsrRequest { turn, language: self.language.clone(), audio };
                let mut stream = self.stack.asr.transcribe(request);
                let reports = self.reports_tx.clone();
                let task = tokio::spawn(async move {
                    while let Some(event) = stream.next().await {
                        let input = match event {
                            Ok(AsrEvent::Partial { turn, text }) => AsrInput::Partial { turn, text },
                            Ok(AsrEvent::Final { turn, text }) => AsrInput::Final { turn, text },
                            Err(e) => AsrInput::Failed { turn, error: e.to_string() },
                        };
                        let last = !matches!(input, AsrInput::Partial { .. });
                        if reports.send(Input::Asr(input)).await.is_err() || last {
                            break;
                        }
                    }
                });
                self.asr = Some(AsrWork { turn, audio: Some(audio_tx), task: task.abort_handle() });
            }
            ProviderCommand::AsrAudio { turn, samples } => {
                if let Some(AsrWork { turn: current, audio: Some(audio), .. }) = &self.asr
                    && *current == turn
                    && audio.try_send(samples).is_err()
                {
                    tracing::warn!(agent_id = %self.agent_id, "speech recognition is behind; audio dropped");
                }
            }
            ProviderCommand::AsrFinish { turn } => {
                if let Some(work) = self.asr.as_mut().filter(|w| w.turn == turn) {
                    work.audio = None;
                }
            }
            ProviderCommand::AsrCancel { turn } => {
                if self.asr.as_ref().is_some_and(|w| w.turn == turn) {
                    self.cancel_asr();
                }
            }
            ProviderCommand::LlmStart { turn, messages, params, tools } => {
                if let Some((_, task)) = self.llm.take() {
                    task.abort();
                }
                let messages =
                    messages.into_iter().map(|PromptMessage { role, content }| ChatMessage { role, content });
                let request = LlmRequest { turn, messages: messages.collect(), params, tools };
                let mut stream = self.stack.llm.chat(request);
                let reports = self.reports_tx.clone();
                let task = tokio::spawn(async move {
                    let (mut prompt_tokens, mut completion_tokens) = (None, None);
                    while let Some(event) = stream.next().await {
                        let input = match event {
                            Ok(LlmEvent::Delta { turn, text }) => LlmInput::Delta { turn, text },
                            Ok(LlmEvent::ToolCall { turn, call }) => LlmInput::ToolCall { turn, call },
                            Ok(LlmEvent::Usage { prompt_tokens: p, completion_tokens: c, .. }) => {
                                (prompt_tokens, completion_tokens) = (Some(p), Some(c));
                                continue;
                            }
                            Ok(LlmEvent::Done { turn }) => LlmInput::Done { turn, prompt_tokens, completion_tokens },
                            Err(e) => LlmInput::Failed { turn, error: e.to_string() },
                        };
                        let last = !matches!(input, LlmInput::Delta { .. } | LlmInput::ToolCall { .. });
                        if reports.send(Input::Llm(input)).await.is_err() || last {
                            return;
                        }
                    }
                    let error = "the answer ended without its end".to_owned();
                    let _ = reports.send(Input::Llm(LlmInput::Failed { turn, error })).await;
                });
                self.llm = Some((turn, task.abort_handle()));
            }
            ProviderCommand::LlmCancel { turn } => {
                if let Some((current, task)) = self.llm.take() {
                    if current == turn {
                        task.abort();
                    } else {
                        self.llm = Some((current, task));
                    }
                }
            }
            ProviderCommand::TtsSpeak { turn, clause, text, voice, speed } => {
                if self.tts_jobs.try_send((clause, TtsRequest { turn, text, voice, speed })).is_err() {
                    let error = "too many clauses waiting for speech synthesis".to_owned();
                    self.input(Input::Tts(TtsInput::Failed { turn, clause, error }));
                }
            }
            ProviderCommand::TtsCancel { turn } => {
                self.tts_cancelled.fetch_max(turn.0, Ordering::Relaxed);
            }
        }
    }

    fn cancel_asr(&mut self) {
        if let Some(work) = self.asr.take() {
            work.task.abort();
        }
    }

    fn cancel_all(&mut self) {
        self.cancel_asr();
        self.tools.cancel_all();
        if let Some((_, task)) = self.llm.take() {
            task.abort();
        }
        self.tts_cancelled.store(u64::MAX, Ordering::Relaxed);
    }
}

/// Synthesises clauses one after the other, so their audio comes back in order, resampled to the
/// playout rate. Clauses of cancelled turns are skipped, and one in progress stops at its next chunk.
async fn synthesize_clauses(
    stack: Stack,
    mut jobs: mpsc::Receiver<(u32, TtsRequest)>,
    reports: mpsc::Sender<Input>,
    cancelled: Arc<AtomicU64>,
) {
    while let Some((clause, request)) = jobs.recv().await {
        let turn = request.turn;
        if turn.0 <= cancelled.load(Ordering::Relaxed) {
            continue;
        }
        let mut stream = stack.tts.synthesize(request);
        let mut failed = false;
        while let Some(chunk) = stream.next().await {
            if turn.0 <= cancelled.load(Ordering::Relaxed) {
                break;
            }
            let input = match chunk {
                Ok(chunk) => {
                    let pcm = to_playout_rate(&chunk.pcm, chunk.sample_rate);
                    TtsInput::Audio { turn, clause, pcm }
                }
                Err(e) => {
                    failed = true;
                    TtsInput::Failed { turn, clause, error: e.to_string() }
                }
            };
            if reports.send(Input::Tts(input)).await.is_err() {
                return;
            }
            if failed {
                break;
            }
        }
        if !failed && turn.0 > cancelled.load(Ordering::Relaxed) {
            let _ = reports.send(Input::Tts(TtsInput::Done { turn, clause })).await;
        }
    }
}

fn to_playout_rate(pcm: &[i16], rate: u32) -> Vec<i16> {
    if rate == PLAYOUT_RATE {
        return pcm.to_vec();
    }
    let samples: Vec<f32> = pcm.iter().map(|s| f32::from(*s) / 32768.0).collect();
    colloquy_rtc::audio::to_i16(&colloquy_rtc::audio::resample(&samples, rate, PLAYOUT_RATE))
}

/// Writes history and turns in the order they happened, off the conversation's loop.
async fn write_records(store: Store, agent: AgentId, mut records: mpsc::UnboundedReceiver<Record>) {
    while let Some(record) = records.recv().await {
        let result = match &record {
            Record::History(entry) => store.append_history(&agent, entry).await,
            Record::Turn(turn) => store.record_turn(&agent, turn).await,
        };
        if let Err(e) = result {
            tracing::error!(agent_id = %agent, error = %e, "could not record the conversation");
        }
    }
}
