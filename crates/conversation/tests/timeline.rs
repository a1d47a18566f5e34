//! Timeline tests of the conversation core on virtual time: a small world feeds a [`Conversation`]
//! microphone frames with VAD results, and answers its provider commands like real providers would
//! (ASR finals after a delay, LLM deltas, TTS audio a little faster than real time), so each test
//! reads as a script of who says what when, and checks what came out and when.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use colloquy_conversation::{
    AgentCommand, AsrInput, ClientEvent, Command, Conversation, Input, LeaveReason, LlmInput, Output, PLAYOUT_FRAME,
    ProviderCommand, SpeakPriority, TtsInput, TurnStatus, VoiceState,
};
use colloquy_model::{
    AgentName, AgentSpec, ChannelName, DisabledStrategy, Greeting, IdleTimeout, InterruptionMode, PromptMessage,
    PromptRole, SilenceAction, SilencePrompt, Speaker, TurnEnd, TurnId, TurnStart,
};

const MIC_FRAME: Duration = Duration::from_millis(32);

fn spec() -> AgentSpec {
    AgentSpec::with_defaults(AgentName::new("timeline").unwrap(), ChannelName::new("room").unwrap())
}

/// How the fake LLM answers: its text in deltas, after a first-token delay.
#[derive(Clone)]
enum LlmScript {
    Answer(&'static str),
    Fail,
    Silent,
}

/// A virtual world around one conversation.
struct World {
    conversation: Conversation,
    start: Instant,
    now: Instant,
    /// Inputs scheduled for later, in no particular order.
    pending: Vec<(Instant, Input)>,
    /// Everything the conversation put out, with the time in ms since the start.
    log: Vec<(u64, Output)>,
    /// What ASR will say for each utterance, in order.
    transcripts: VecDeque<&'static str>,
    /// How the LLM answers each request, in order; the last one repeats.
    llm: VecDeque<LlmScript>,
    llm_first_token: Duration,
    /// Between two LLM deltas (one word each).
    llm_delta_gap: Duration,
    asr_delay: Duration,
    tts_delay: Duration,
    /// The microphone's speech probability from now on.
    mic_probability: f32,
    mic_next: Instant,
}

impl World {
    fn new(spec: AgentSpec) -> World {
        let start = Instant::now();
        World {
            conversation: Conversation::new(spec, start),
            start,
            now: start,
            pending: Vec::new(),
            log: Vec::new(),
            transcripts: VecDeque::new(),
            llm: VecDeque::from([LlmScript::Answer("Paris is the capital of France. It is lovely.")]),
            llm_first_token: Duration::from_millis(100),
            llm_delta_gap: Duration::from_millis(10),
            asr_delay: Duration::from_millis(150),
            tts_delay: Duration::from_millis(80),
            mic_probability: 0.02,
            mic_next: start,
        }
    }

    /// A world with one person in the channel (joined at time 0).
    fn joined(spec: AgentSpec) -> World {
        let mut world = World::new(spec);
        world.input(Input::ParticipantJoined { present: 1 });
        world
    }

    fn ms(&self, at: Instant) -> u64 {
        at.duration_since(self.start).as_millis() as u64
    }

    fn now_ms(&self) -> u64 {
        self.ms(self.now)
    }

    fn input(&mut self, input: Input) {
        self.conversation.handle_input(self.now, input);
        self.drain();
    }

    fn schedule(&mut self, after: Duration, input: Input) {
        self.pending.push((self.now + after, input));
    }

    /// Takes every output queued now, answering provider commands like a provider would.
    fn drain(&mut self) -> Instant {
        loop {
            let output = self.conversation.poll_output();
            if let Output::Timeout(deadline) = output {
                return deadline;
            }
            self.react(&output);
            self.log.push((self.now_ms(), output));
        }
    }

    fn react(&mut self, output: &Output) {
        let Output::Provider(command) = output else { return };
        match command.clone() {
            ProviderCommand::AsrStart { turn } => {
                self.schedule(Duration::from_millis(200), Input::Asr(AsrInput::Partial { turn, text: "…".into() }));
            }
            ProviderCommand::AsrFinish { turn } => {
                let text = self.transcripts.pop_front().unwrap_or("hello there").to_owned();
                self.schedule(self.asr_delay, Input::Asr(AsrInput::Final { turn, text }));
            }
            ProviderCommand::AsrCancel { turn } => self.drop_pending(turn, |i| matches!(i, Input::Asr(_))),
            ProviderCommand::AsrAudio { .. } => {}
            ProviderCommand::LlmStart { turn, .. } => {
                let script = if self.llm.len() > 1 { self.llm.pop_front() } else { self.llm.front().cloned() };
                match script.expect("an LLM script") {
                    LlmScript::Answer(text) => {
                        let mut at = self.llm_first_token;
                        for word in text.split_inclusive(' ') {
                            self.schedule(at, Input::Llm(LlmInput::Delta { turn, text: word.into() }));
                            at += self.llm_delta_gap;
                        }
                        let done = LlmInput::Done { turn, prompt_tokens: Some(20), completion_tokens: Some(10) };
                        self.schedule(at, Input::Llm(done));
                    }
                    LlmScript::Fail => {
                        self.schedule(self.llm_first_token, Input::Llm(LlmInput::Failed { turn, error: "boom".into() }))
                    }
                    LlmScript::Silent => {}
                }
            }
            ProviderCommand::LlmCancel { turn } => self.drop_pending(turn, |i| matches!(i, Input::Llm(_))),
            ProviderCommand::TtsSpeak { turn, clause, text, .. } => {
                // 250 ms of audio per word, at 48 kHz, in two chunks.
                let samples = text.split_whitespace().count() * 12_000;
                let half = vec![1000i16; samples / 2];
                self.schedule(self.tts_delay, Input::Tts(TtsInput::Audio { turn, clause, pcm: half.clone() }));
                self.schedule(self.tts_delay * 2, Input::Tts(TtsInput::Audio { turn, clause, pcm: half }));
                self.schedule(self.tts_delay * 2, Input::Tts(TtsInput::Done { turn, clause }));
            }
            ProviderCommand::TtsCancel { turn } => self.drop_pending(turn, |i| matches!(i, Input::Tts(_))),
        }
    }

    fn drop_pending(&mut self, turn: TurnId, kind: impl Fn(&Input) -> bool) {
        self.pending.retain(|(_, input)| !(kind(input) && input_turn(input) == Some(turn)));
    }

    /// Runs the world for `duration`: microphone frames, scheduled inputs and timeouts, in time order.
    fn run(&mut self, duration: Duration) {
        let until = self.now + duration;
        loop {
            let deadline = self.drain();
            let next_input = self.pending.iter().map(|(at, _)| *at).min();
            let next = [Some(deadline), next_input, Some(self.mic_next)].into_iter().flatten().min().unwrap();
            if next > until {
                self.now = until;
                return;
            }
            self.now = self.now.max(next);
            if self.mic_next <= self.now {
                self.mic_next += MIC_FRAME;
                let probability = self.mic_probability;
                self.conversation.handle_input(self.now, Input::Audio(vec![0.0; 512]));
                self.conversation.handle_input(self.now, Input::Vad { probability, length: MIC_FRAME });
            } else if next_input == Some(next) {
                let index = self.pending.iter().position(|(at, _)| *at == next).unwrap();
                let (_, input) = self.pending.remove(index);
                self.conversation.handle_input(self.now, input);
            } else {
                self.conversation.handle_timeout(self.now);
            }
        }
    }

    /// The user speaks for `duration` (ASR will hear `text`), then is silent.
    fn user_says(&mut self, text: &'static str, duration: Duration) {
        self.transcripts.push_back(text);
        self.mic_probability = 0.95;
        self.run(duration);
        self.mic_probability = 0.02;
    }

    fn plays(&self) -> Vec<(u64, TurnId)> {
        self.log
            .iter()
            .filter_map(|(at, o)| if let Output::Play { turn, .. } = o { Some((*at, *turn)) } else { None })
            .collect()
    }

    fn clients(&self) -> Vec<(u64, ClientEvent)> {
        self.log
            .iter()
            .filter_map(|(at, o)| if let Output::Client(e) = o { Some((*at, e.clone())) } else { None })
            .collect()
    }

    fn providers(&self) -> Vec<(u64, ProviderCommand)> {
        self.log
            .iter()
            .filter_map(|(at, o)| if let Output::Provider(c) = o { Some((*at, c.clone())) } else { None })
            .collect()
    }

    fn states(&self) -> Vec<VoiceState> {
        self.clients()
            .into_iter()
            .filter_map(|(_, e)| if let ClientEvent::State { state, .. } = e { Some(state) } else { None })
            .collect()
    }

    fn turns(&self) -> Vec<(TurnId, TurnStart, TurnEnd)> {
        self.log
            .iter()
            .filter_map(
                |(_, o)| if let Output::Turn { turn, start, end, .. } = o { Some((*turn, *start, *end)) } else { None },
            )
            .collect()
    }

    fn history(&self) -> Vec<(Speaker, String, bool)> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::History { speaker, content, interrupted, .. } => {
                    Some((*speaker, content.clone(), *interrupted))
                }
                _ => None,
            })
            .collect()
    }

    fn llm_starts(&self) -> Vec<(TurnId, Vec<String>)> {
        self.providers()
            .into_iter()
            .filter_map(|(_, c)| match c {
                ProviderCommand::LlmStart { turn, messages, .. } => {
                    Some((turn, messages.into_iter().map(|m| m.content).collect()))
                }
                _ => None,
            })
            .collect()
    }

    fn tts_texts(&self) -> Vec<String> {
        self.providers()
            .into_iter()
            .filter_map(|(_, c)| if let ProviderCommand::TtsSpeak { text, .. } = c { Some(text) } else { None })
            .collect()
    }
}

fn input_turn(input: &Input) -> Option<TurnId> {
    match input {
        Input::Asr(AsrInput::Partial { turn, .. } | AsrInput::Final { turn, .. } | AsrInput::Failed { turn, .. }) => {
            Some(*turn)
        }
        Input::Llm(LlmInput::Delta { turn, .. } | LlmInput::Done { turn, .. } | LlmInput::Failed { turn, .. }) => {
            Some(*turn)
        }
        Input::Tts(TtsInput::Audio { turn, .. } | TtsInput::Done { turn, .. } | TtsInput::Failed { turn, .. }) => {
            Some(*turn)
        }
        _ => None,
    }
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s)
}

#[test]
fn a_full_turn_goes_from_speech_to_final_to_llm_to_tts_to_paced_playout() {
    let mut world = World::joined(spec());
    world.run(secs(0.5));
    world.user_says("what is the capital of france", secs(1.2));
    world.run(secs(6.0));

    let turn = TurnId(1);
    // The utterance was recognised with the prefix padding, finished after the silence, and answered.
    let providers = world.providers();
    assert!(matches!(providers[0].1, ProviderCommand::AsrStart { turn: TurnId(1) }));
    let ProviderCommand::AsrAudio { samples, .. } = &providers[1].1 else { panic!("{providers:?}") };
    assert!(samples.len() >= 16_000 * 300 / 1000, "prefix padding and the speech so far: {}", samples.len());
    let finish_at = providers.iter().find(|(_, c)| matches!(c, ProviderCommand::AsrFinish { .. })).unwrap().0;
    // The last speech frame ended within 32 ms before 1.7 s; 640 ms of silent frames end the turn.
    let speech_end_ms = 500 + 1200;
    assert!(
        (speech_end_ms - 32 + 640..=speech_end_ms + 640 + 32).contains(&finish_at),
        "turn ends after 640 ms of silence: {finish_at}"
    );
    let llm = world.llm_starts();
    assert_eq!(llm.len(), 1);
    assert_eq!(llm[0].1.last().unwrap(), "what is the capital of france");
    assert_eq!(
        llm[0].1[0],
        AgentSpec::with_defaults(AgentName::new("a").unwrap(), ChannelName::new("b").unwrap()).llm.system_messages[0]
            .content
    );

    // Clauses went to TTS as the LLM wrote them, the first before the answer was complete.
    assert_eq!(world.tts_texts(), ["Paris is the capital of France.", "It is lovely."]);

    // Playout: every frame 20 ms after the last, no gaps, no bursts, each a full frame.
    let plays = world.plays();
    assert!(plays.iter().all(|(_, t)| *t == turn));
    assert_eq!(plays.len(), 75 + 38, "6 words, then 3 words padded to whole frames, of 250 ms each");
    for pair in plays.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, 20, "frames at {} and {}", pair[0].0, pair[1].0);
    }
    assert!(world.log.iter().all(|(_, o)| !matches!(o, Output::Play { pcm, .. } if pcm.len() != PLAYOUT_FRAME)));

    // Clients saw the transcripts, the metrics and the states in order.
    let clients = world.clients();
    assert!(clients.iter().any(|(_, e)| matches!(e, ClientEvent::UserTranscription { is_final: false, .. })));
    assert!(clients.iter().any(|(_, e)| matches!(e, ClientEvent::UserTranscription { is_final: true, text, .. } if text == "what is the capital of france")));
    let ended = clients.iter().find_map(|(_, e)| match e {
        ClientEvent::AssistantTranscription { text, status: TurnStatus::Ended, .. } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(ended.as_deref(), Some("Paris is the capital of France. It is lovely."));
    assert_eq!(
        world.states(),
        [VoiceState::Listening, VoiceState::Thinking, VoiceState::Speaking, VoiceState::Listening]
    );
    let metrics = clients
        .iter()
        .find_map(|(_, e)| if let ClientEvent::Metrics { metrics, .. } = e { Some(*metrics) } else { None })
        .unwrap();
    // Speech ended at 1.7 s; the end was decided 640 ms (and a VAD frame) later; the final came
    // 150 ms after that; the first token 100 ms later; the first clause 60 ms after it; audio 80 ms on.
    let eou = metrics.eou_delay_ms.unwrap();
    assert!((640..=704).contains(&eou), "{metrics:?}");
    assert_eq!(metrics.asr_ttlw_ms, Some(eou + 150));
    assert_eq!(metrics.llm_ttft_ms, Some(100));
    assert_eq!(metrics.llm_ttfs_ms, Some(150), "the first clause ends with its sixth word");
    assert_eq!(metrics.tts_ttfb_ms, Some(80));
    assert_eq!(metrics.engine_overhead_ms, Some(0), "virtual time: the engine takes none");
    assert_eq!(metrics.e2e_ms, Some(eou + 150 + 150 + 80));

    assert_eq!(world.turns(), [(turn, TurnStart::VoiceInput, TurnEnd::Ok)]);
    assert_eq!(
        world.history(),
        [
            (Speaker::User, "what is the capital of france".into(), false),
            (Speaker::Assistant, "Paris is the capital of France. It is lovely.".into(), false)
        ]
    );
}

/// A world where the agent is in the middle of a long answer; returns the time its audio started.
fn agent_speaking(spec: AgentSpec) -> (World, u64) {
    let mut world = World::joined(spec);
    world.llm = VecDeque::from([LlmScript::Answer(
        "Let me tell you a very long story about the sea. It goes on and on, and on again. The end comes much later.",
    )]);
    // Slow enough that the LLM is still writing while the agent speaks.
    world.llm_delta_gap = Duration::from_millis(100);
    world.run(secs(0.3));
    world.user_says("tell me a story", secs(1.0));
    world.run(secs(2.0));
    let first = world.plays().first().expect("the agent is speaking").0;
    (world, first)
}

#[test]
fn barge_in_stops_the_audio_within_a_frame_cancels_the_llm_and_marks_what_was_heard() {
    let (mut world, _) = agent_speaking(spec());
    world.llm = VecDeque::from([LlmScript::Answer("Sure.")]);
    let before = world.plays().len();
    world.user_says("stop please", secs(0.8));
    let interrupted_at = world
        .clients()
        .iter()
        .find_map(|(at, e)| matches!(e, ClientEvent::Interrupted { turn: TurnId(1) }).then_some(*at))
        .expect("interrupted");
    let spoke_at = world.now_ms() - 800;
    // Default: 400 ms of speech interrupts; the decision comes on a VAD frame.
    assert!((spoke_at + 400..=spoke_at + 432 + 32).contains(&interrupted_at), "{spoke_at} → {interrupted_at}");
    let old_frames: Vec<u64> = world.plays().iter().filter(|(_, t)| *t == TurnId(1)).map(|(at, _)| *at).collect();
    assert!(old_frames.len() > before);
    assert!(*old_frames.last().unwrap() <= interrupted_at, "no frame of the old turn after the decision");
    let providers = world.providers();
    assert!(
        providers
            .iter()
            .any(|(at, c)| *at == interrupted_at && matches!(c, ProviderCommand::LlmCancel { turn: TurnId(1) }))
    );
    assert!(
        providers
            .iter()
            .any(|(at, c)| *at == interrupted_at && matches!(c, ProviderCommand::TtsCancel { turn: TurnId(1) }))
    );

    // What was heard is a prefix of the answer, marked interrupted, in the history and to clients.
    let history = world.history();
    let (speaker, heard, interrupted) = history[1].clone();
    assert_eq!((speaker, interrupted), (Speaker::Assistant, true));
    assert!(
        !heard.is_empty()
            && "Let me tell you a very long story about the sea. It goes on and on, and on again.".starts_with(&heard),
        "{heard:?}"
    );
    assert!(world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::AssistantTranscription { status: TurnStatus::Interrupted, text, .. } if *text == heard)));
    assert_eq!(world.turns()[0], (TurnId(1), TurnStart::VoiceInput, TurnEnd::Interrupted));

    // The interruption is the user's next turn; the LLM sees what was heard, not the whole answer.
    world.run(secs(3.0));
    let llm = world.llm_starts();
    assert_eq!(llm.len(), 2);
    assert_eq!(llm[1].1[llm[1].1.len() - 2..], [heard, "stop please".to_owned()]);
}

#[test]
fn a_turn_records_how_long_the_user_spoke_what_was_played_and_what_cut_it_off() {
    let details = |world: &World| -> Vec<(TurnId, colloquy_model::TurnDetail)> {
        let turns = world.log.iter().filter_map(|(_, o)| match o {
            Output::Turn { turn, detail, .. } => Some((*turn, *detail)),
            _ => None,
        });
        turns.collect()
    };
    let (mut world, _) = agent_speaking(spec());
    world.llm = VecDeque::from([LlmScript::Answer("Sure.")]);
    world.user_says("stop please", secs(0.8));
    world.run(secs(4.0));
    let details = details(&world);
    let (first, second) = (details[0].1, details[1].1);
    assert_eq!(details[0].0, TurnId(1));
    // Turn 1: "tell me a story" for about 1 s; cut off by speech after some of it was played.
    assert!((900..=1100).contains(&first.speech_duration_ms.unwrap()), "{first:?}");
    assert_eq!(first.interrupted_by, Some(colloquy_model::InterruptCause::UserSpeech));
    assert!(first.playback_ms.unwrap() > 0, "{first:?}");
    assert_eq!(first.interrupt_duration_ms, None);
    // Turn 2: the speech that cut it off, after the interruption minimum (400 ms by default).
    assert!((400..=470).contains(&second.interrupt_duration_ms.unwrap()), "{second:?}");
    assert!((700..=900).contains(&second.speech_duration_ms.unwrap()), "{second:?}");
    assert_eq!(second.interrupted_by, None);
    assert!(second.playback_ms.unwrap() > 0);
}

#[test]
fn a_cough_shorter_than_the_interruption_minimum_does_not_interrupt() {
    let (mut world, _) = agent_speaking(spec());
    world.user_says("cough", secs(0.2));
    world.run(secs(8.0));
    assert!(!world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { .. })));
    assert!(
        world.providers().iter().any(|(_, c)| matches!(c, ProviderCommand::AsrCancel { .. })),
        "the cough is not transcribed"
    );
    assert_eq!(world.turns(), [(TurnId(1), TurnStart::VoiceInput, TurnEnd::Ok)]);
    assert_eq!(world.llm_starts().len(), 1, "the cough did not become a turn");
    let plays = world.plays();
    for pair in plays.windows(2) {
        assert_eq!(pair[1].0 - pair[0].0, 20, "playout went on without a gap");
    }
}

fn keywords_spec() -> AgentSpec {
    let mut spec = spec();
    spec.interruption.mode = InterruptionMode::Keywords;
    spec.interruption.keywords = vec!["stop".into(), "hold on".into()];
    spec
}

#[test]
fn in_keywords_mode_only_a_keyword_interrupts() {
    let (mut world, _) = agent_speaking(keywords_spec());
    world.user_says("yes I see", secs(1.0));
    world.run(secs(1.0));
    assert!(
        !world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { .. })),
        "long speech without a keyword"
    );
    world.user_says("okay hold on a second", secs(1.0));
    world.run(secs(1.0));
    assert!(world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { turn: TurnId(1) })));
    let llm = world.llm_starts();
    assert_eq!(
        llm.last().unwrap().1.last().unwrap(),
        "yes I see okay hold on a second",
        "the words heard before join the turn (append)"
    );
}

#[test]
fn with_interruption_off_speech_is_appended_to_the_next_turn_or_ignored() {
    let mut appended = spec();
    appended.interruption.enabled = false;
    appended.interruption.when_disabled = DisabledStrategy::Append;
    let (mut world, _) = agent_speaking(appended);
    world.user_says("and another thing", secs(1.0));
    world.run(secs(12.0));
    assert!(!world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { .. })));
    assert_eq!(world.turns()[0], (TurnId(1), TurnStart::VoiceInput, TurnEnd::Ok));
    let llm = world.llm_starts();
    assert_eq!(llm.len(), 2, "answered after the agent finished");
    assert_eq!(llm[1].1.last().unwrap(), "and another thing");

    let mut ignored = spec();
    ignored.interruption.enabled = false;
    ignored.interruption.when_disabled = DisabledStrategy::Ignore;
    let (mut world, _) = agent_speaking(ignored);
    world.user_says("and another thing", secs(1.0));
    world.run(secs(12.0));
    assert_eq!(world.llm_starts().len(), 1);
    assert_eq!(world.turns(), [(TurnId(1), TurnStart::VoiceInput, TurnEnd::Ok)]);
}

#[test]
fn speak_interrupts_appends_or_is_ignored_by_priority() {
    let speak = |text: &str, priority| {
        Input::Command(Command::Agent(AgentCommand::Speak { text: text.into(), priority, interruptible: true }))
    };

    let (mut world, _) = agent_speaking(spec());
    world.input(speak("Breaking news.", SpeakPriority::Interrupt));
    world.run(secs(3.0));
    assert_eq!(world.turns()[0].2, TurnEnd::Interrupted);
    assert_eq!(world.turns()[1].1, TurnStart::ApiSpeak);
    assert_eq!(world.tts_texts().last().unwrap(), "Breaking news.");

    let (mut world, _) = agent_speaking(spec());
    world.input(speak("And one more thing.", SpeakPriority::Append));
    world.run(secs(15.0));
    let turns = world.turns();
    assert_eq!(turns[0].2, TurnEnd::Ok, "the story was told to its end");
    assert_eq!((turns[1].1, turns[1].2), (TurnStart::ApiSpeak, TurnEnd::Ok));
    let plays = world.plays();
    let story_end = plays.iter().filter(|(_, t)| *t == turns[0].0).map(|(at, _)| *at).max().unwrap();
    let appended_start = plays.iter().filter(|(_, t)| *t == turns[1].0).map(|(at, _)| *at).min().unwrap();
    assert!(appended_start > story_end);

    let (mut world, _) = agent_speaking(spec());
    world.input(speak("Never said.", SpeakPriority::Ignore));
    world.run(secs(15.0));
    assert!(!world.tts_texts().contains(&"Never said.".to_owned()));
    world.input(speak("Said when quiet.", SpeakPriority::Ignore));
    world.run(secs(2.0));
    assert_eq!(world.tts_texts().last().unwrap(), "Said when quiet.");
}

#[test]
fn think_starts_a_turn_when_listening_replaces_one_when_thinking_and_cuts_off_speech() {
    let think = |text: &str| Input::Command(Command::Agent(AgentCommand::think(text)));

    // Listening: a new turn.
    let mut world = World::joined(spec());
    world.input(think("What time is it?"));
    assert_eq!(world.llm_starts()[0].1.last().unwrap(), "What time is it?");
    world.run(secs(5.0));
    assert_eq!(world.turns(), [(TurnId(1), TurnStart::ApiThink, TurnEnd::Ok)]);

    // Thinking: the answer being prepared is dropped; the LLM sees both messages.
    let mut world = World::joined(spec());
    world.llm_first_token = Duration::from_millis(500);
    world.input(think("First question?"));
    world.run(secs(0.2));
    world.input(think("Actually, second question?"));
    let providers = world.providers();
    assert!(providers.iter().any(|(_, c)| matches!(c, ProviderCommand::LlmCancel { turn: TurnId(1) })));
    let llm = world.llm_starts();
    assert_eq!(llm[1].1[llm[1].1.len() - 2..], ["First question?".to_owned(), "Actually, second question?".to_owned()]);
    world.run(secs(5.0));
    assert_eq!(world.turns()[0], (TurnId(1), TurnStart::ApiThink, TurnEnd::Interrupted));
    assert_eq!(world.turns()[1], (TurnId(2), TurnStart::ApiThink, TurnEnd::Ok));

    // Speaking: the agent is cut off.
    let (mut world, _) = agent_speaking(spec());
    world.input(think("Change of topic."));
    assert!(world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { turn: TurnId(1) })));
    assert_eq!(world.llm_starts().last().unwrap().1.last().unwrap(), "Change of topic.");
}

#[test]
fn think_follows_its_action_for_the_agents_state() {
    use colloquy_model::{ThinkAction as A, ThinkHandling};
    let think = |text: &str, listening: A, thinking: A, speaking: A| {
        let handling = ThinkHandling { listening, thinking, speaking, interruptible: true };
        Input::Command(Command::Agent(AgentCommand::Think { text: text.into(), handling }))
    };

    // Speaking, ignore (Agora's default): the agent goes on; the text never reaches the LLM.
    let (mut world, _) = agent_speaking(spec());
    world.input(think("Ignored.", A::Interrupt, A::Interrupt, A::Ignore));
    world.run(secs(10.0));
    assert!(!world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { .. })));
    assert!(!world.llm_starts().iter().any(|(_, m)| m.last().unwrap() == "Ignored."));

    // Speaking, append: the reply ends as it would have, then the text is answered.
    let (mut world, _) = agent_speaking(spec());
    world.input(think("And then?", A::Interrupt, A::Interrupt, A::Append));
    world.run(secs(15.0));
    let turns = world.turns();
    assert_eq!(turns[0].2, TurnEnd::Ok, "{turns:?}");
    assert_eq!(turns[1].1, TurnStart::ApiThink, "{turns:?}");
    assert_eq!(world.llm_starts().last().unwrap().1.last().unwrap(), "And then?");

    // Thinking, append: the answer being prepared is kept, and the text answered after it.
    let mut world = World::joined(spec());
    world.llm_first_token = Duration::from_millis(500);
    world.input(think("First?", A::Interrupt, A::Interrupt, A::Interrupt));
    world.run(secs(0.2));
    world.input(think("Second?", A::Interrupt, A::Append, A::Interrupt));
    assert!(!world.providers().iter().any(|(_, c)| matches!(c, ProviderCommand::LlmCancel { .. })));
    world.run(secs(15.0));
    let turns = world.turns();
    assert_eq!(
        &turns[..2],
        [(TurnId(1), TurnStart::ApiThink, TurnEnd::Ok), (TurnId(2), TurnStart::ApiThink, TurnEnd::Ok)]
    );

    // Listening, inject, while the user speaks: answered with what the user says, in one turn.
    let mut world = World::joined(spec());
    world.user_says("what about", secs(0.8));
    world.input(think("the weather in Paris", A::Inject, A::Interrupt, A::Interrupt));
    world.run(secs(5.0));
    let starts = world.llm_starts();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(starts[0].1.last().unwrap(), "what about the weather in Paris");
    assert_eq!(world.turns()[0].1, TurnStart::VoiceInput);

    // Listening, inject, with nobody speaking: answered at once.
    let mut world = World::joined(spec());
    world.input(think("Say hello.", A::Inject, A::Interrupt, A::Interrupt));
    assert_eq!(world.llm_starts()[0].1.last().unwrap(), "Say hello.");
}

#[test]
fn an_llm_error_is_reported_and_the_failure_message_spoken_and_the_agent_keeps_listening() {
    let mut spec = spec();
    spec.failure_message = Some("Sorry, I had a problem.".into());
    let mut world = World::joined(spec);
    world.llm = VecDeque::from([LlmScript::Fail, LlmScript::Answer("Fine now.")]);
    world.user_says("hello", secs(0.8));
    world.run(secs(4.0));
    assert!(world.clients().iter().any(|(_, e)| matches!(
        e,
        ClientEvent::Error { turn: TurnId(1), stage: colloquy_conversation::Stage::Llm, .. }
    )));
    assert_eq!(world.tts_texts(), ["Sorry, I had a problem."]);
    assert_eq!(world.turns()[0], (TurnId(1), TurnStart::VoiceInput, TurnEnd::Error));
    assert_eq!(world.conversation.state(), VoiceState::Listening);
    world.user_says("hello again", secs(0.8));
    world.run(secs(4.0));
    assert_eq!(world.tts_texts().last().unwrap(), "Fine now.");
}

#[test]
fn a_stalled_llm_counts_as_a_failure() {
    let mut world = World::joined(spec());
    world.llm = VecDeque::from([LlmScript::Silent]);
    world.user_says("hello", secs(0.8));
    world.run(colloquy_conversation::PROVIDER_STALL + secs(3.0));
    assert!(world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Error { .. })));
    assert_eq!(world.turns()[0].2, TurnEnd::Error);
    assert_eq!(world.conversation.state(), VoiceState::Listening);
}

#[test]
fn the_agent_leaves_after_the_idle_timeout_and_a_return_cancels_it() {
    let mut spec = spec();
    spec.idle_timeout = IdleTimeout::AfterSecs(10);
    let mut world = World::joined(spec);
    world.run(secs(5.0));
    world.input(Input::ParticipantLeft { present: 0 });
    assert_eq!(world.conversation.state(), VoiceState::Idle);
    world.run(secs(6.0));
    world.input(Input::ParticipantJoined { present: 1 });
    world.run(secs(20.0));
    assert!(!world.log.iter().any(|(_, o)| matches!(o, Output::Leave(_))));
    world.input(Input::ParticipantLeft { present: 0 });
    let left_at = world.now_ms();
    world.run(secs(20.0));
    let leave: Vec<u64> =
        world.log.iter().filter(|(_, o)| *o == Output::Leave(LeaveReason::Idle)).map(|(at, _)| *at).collect();
    assert_eq!(leave, [left_at + 10_000]);
}

#[test]
fn nobody_joining_at_all_also_times_out() {
    let mut spec = spec();
    spec.idle_timeout = IdleTimeout::AfterSecs(3);
    let mut world = World::new(spec);
    world.run(secs(5.0));
    assert!(world.log.iter().any(|(at, o)| *at == 3000 && *o == Output::Leave(LeaveReason::Idle)));
}

#[test]
fn audio_of_a_cancelled_turn_never_reaches_playout() {
    let (mut world, _) = agent_speaking(spec());
    world.input(Input::Command(Command::Agent(AgentCommand::Interrupt)));
    let cut = world.now_ms();
    // A TTS that did not get the cancel in time still sends audio for the old turn.
    for clause in 0..3 {
        world.input(Input::Tts(TtsInput::Audio { turn: TurnId(1), clause, pcm: vec![7; 48_000] }));
        world.input(Input::Tts(TtsInput::Done { turn: TurnId(1), clause }));
    }
    world.input(Input::Llm(LlmInput::Delta { turn: TurnId(1), text: "More words. ".into() }));
    world.run(secs(5.0));
    assert!(world.plays().iter().all(|(at, turn)| *turn != TurnId(1) || *at <= cut));
    let tts_after: Vec<_> = world
        .log
        .iter()
        .filter(|(at, o)| *at > cut && matches!(o, Output::Provider(ProviderCommand::TtsSpeak { .. })))
        .collect();
    assert!(tts_after.is_empty(), "{tts_after:?}");
    assert_eq!(world.conversation.state(), VoiceState::Listening);
}

#[test]
fn the_greeting_is_said_on_the_first_join_only_and_can_be_made_uninterruptible() {
    let mut spec = spec();
    spec.greeting = Some(Greeting { text: "Hello! How can I help you today?".into(), interruptible: false });
    let mut world = World::new(spec);
    world.run(secs(1.0));
    assert!(world.tts_texts().is_empty(), "nobody to greet yet");
    world.input(Input::ParticipantJoined { present: 1 });
    world.run(secs(0.5));
    world.user_says("hi hi hi", secs(1.0));
    world.run(secs(6.0));
    assert!(!world.clients().iter().any(|(_, e)| matches!(e, ClientEvent::Interrupted { .. })));
    assert_eq!(world.tts_texts()[..2], ["Hello!".to_owned(), "How can I help you today?".to_owned()]);
    assert_eq!(world.turns()[0], (TurnId(1), TurnStart::Greeting, TurnEnd::Ok));
    assert_eq!(world.llm_starts().len(), 1, "what was said over the greeting is answered after it (append)");
    world.input(Input::ParticipantLeft { present: 0 });
    world.input(Input::ParticipantJoined { present: 1 });
    world.run(secs(3.0));
    assert_eq!(world.turns().iter().filter(|t| t.1 == TurnStart::Greeting).count(), 1);
}

#[test]
fn the_silence_prompt_comes_after_the_configured_silence_once() {
    let mut spec = spec();
    spec.silence_prompt =
        Some(SilencePrompt { timeout_ms: 5_000, action: SilenceAction::Speak, content: "Are you still there?".into() });
    let mut world = World::joined(spec);
    world.user_says("hello", secs(0.8));
    world.run(secs(4.0));
    let answer_end = world.log.iter().find_map(|(at, o)| matches!(o, Output::Turn { .. }).then_some(*at)).unwrap();
    world.run(secs(20.0));
    let prompts: Vec<_> = world
        .providers()
        .into_iter()
        .filter(|(_, c)| matches!(c, ProviderCommand::TtsSpeak { text, .. } if text == "Are you still there?"))
        .collect();
    assert_eq!(prompts.len(), 1, "once per silence: {prompts:?}");
    assert_eq!(prompts[0].0, answer_end + 5_000);
    assert!(world.turns().iter().any(|t| t.1 == TurnStart::SilencePrompt));
    // The user speaks again: the next silence gets its prompt too.
    world.user_says("sorry I was away", secs(0.8));
    world.run(secs(12.0));
    let prompts = world.tts_texts().iter().filter(|t| *t == "Are you still there?").count();
    assert_eq!(prompts, 2);
}

#[test]
fn the_llm_sees_the_system_prompt_and_at_most_max_history_past_messages() {
    let mut spec = spec();
    spec.max_history = 2;
    let mut world = World::joined(spec);
    world.llm = VecDeque::from([LlmScript::Answer("One."), LlmScript::Answer("Two."), LlmScript::Answer("Three.")]);
    for text in ["first", "second", "third"] {
        world.user_says(text, secs(0.8));
        world.run(secs(3.0));
    }
    let llm = world.llm_starts();
    assert_eq!(llm.len(), 3);
    assert_eq!(llm[2].1[1..], ["second".to_owned(), "Two.".to_owned(), "third".to_owned()]);
}

#[test]
fn an_update_changes_the_voice_and_prompt_from_the_next_request_on() {
    let mut world = World::joined(spec());
    let update = colloquy_model::SpecUpdate {
        system_messages: Some(vec![colloquy_model::PromptMessage {
            role: colloquy_model::PromptRole::System,
            content: "Be brief.".into(),
        }]),
        voice: Some("en_US-other".into()),
        ..Default::default()
    };
    world.input(Input::Command(Command::Update(update)));
    world.user_says("hello", secs(0.8));
    world.run(secs(3.0));
    assert_eq!(world.llm_starts()[0].1[0], "Be brief.");
    assert!(
        world
            .providers()
            .iter()
            .any(|(_, c)| matches!(c, ProviderCommand::TtsSpeak { voice, .. } if voice == "en_US-other"))
    );
}

#[test]
fn clear_history_leaves_only_the_system_messages_for_the_next_turn() {
    let think = |text: &str| Input::Command(Command::Agent(AgentCommand::think(text)));
    let mut spec = spec();
    let system = spec.llm.system_messages.len();
    // An earlier exchange given with the prompt goes too.
    spec.llm.system_messages.push(PromptMessage { role: PromptRole::User, content: "Earlier question".into() });
    let mut world = World::joined(spec);
    world.input(think("My name is Ada."));
    world.run(secs(5.0));
    world.input(think("What is my name?"));
    world.run(secs(5.0));
    // The second turn saw the earlier exchange, the first question and its answer.
    assert_eq!(world.llm_starts()[1].1.len(), system + 4);
    world.input(Input::Command(Command::Agent(AgentCommand::ClearHistory)));
    world.input(think("Who am I?"));
    world.run(secs(5.0));
    assert_eq!(world.llm_starts()[2].1.len(), system + 1);
    assert_eq!(world.llm_starts()[2].1.last().unwrap(), "Who am I?");
    // The records keep everything.
    assert_eq!(world.history().iter().filter(|(speaker, ..)| *speaker == Speaker::User).count(), 3);
}
