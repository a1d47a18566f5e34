//! Tool calls in the conversation core, on virtual time: a small world answers the core's LLM
//! requests with scripted answers (tool calls or words), runs its tool calls with scripted delays
//! and outcomes, and synthesises clauses quickly, so each test reads as a script of what the LLM
//! asks, what the tools do and when, and checks what the core did.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use colloquy_conversation::{
    AgentCommand, AsrInput, ClientEvent, Command, Conversation, Input, LeaveReason, LlmInput, Output, ProviderCommand,
    ToolCommand, ToolEnd, ToolInput, TtsInput,
};
use colloquy_model::{
    AgentName, AgentSpec, ChannelName, Tool, ToolCall, ToolChoice, ToolFunction, ToolKind, ToolOutcome, ToolUse,
    TurnEnd, TurnId, TurnMetrics,
};

const MIC_FRAME: Duration = Duration::from_millis(32);
/// The LLM's answer (calls or words) is complete this long after its request.
const LLM_ANSWER: Duration = Duration::from_millis(100);

fn tool(name: &str, timeout_ms: u32) -> Tool {
    Tool {
        function: ToolFunction {
            name: name.into(),
            description: format!("The {name}."),
            parameters: r#"{"type":"object","properties":{}}"#.into(),
        },
        timeout_ms,
        kind: ToolKind::Http { url: format!("http://127.0.0.1:9/{name}") },
    }
}

fn spec() -> AgentSpec {
    let mut spec = AgentSpec::with_defaults(AgentName::new("tools").unwrap(), ChannelName::new("room").unwrap());
    spec.tools.available = vec![tool("weather", 2000), tool("time", 2000)];
    spec
}

/// A `tool.started` (no end) or `tool.finished` (its duration and end) at a time, for a call id.
type ToolEvent = (u64, String, Option<(u32, ToolEnd)>);

/// What the LLM answers to one request.
#[derive(Clone)]
enum Answer {
    /// Calls these tools (name, arguments), saying nothing.
    Calls(&'static [(&'static str, &'static str)]),
    Says(&'static str),
    /// Says something, then calls.
    SaysAndCalls(&'static str, &'static [(&'static str, &'static str)]),
}

/// What a tool does with a call.
#[derive(Clone)]
enum Behaviour {
    After(Duration, ToolOutcome),
    /// Never answers.
    Hangs,
}

struct World {
    conversation: Conversation,
    start: Instant,
    now: Instant,
    pending: Vec<(Instant, Input)>,
    log: Vec<(u64, Output)>,
    /// One per LLM request; the last repeats.
    answers: VecDeque<Answer>,
    tools: HashMap<&'static str, Behaviour>,
    calls_made: u32,
    mic_probability: f32,
    mic_next: Instant,
}

impl World {
    fn new(spec: AgentSpec, answers: &[Answer]) -> World {
        let start = Instant::now();
        let mut world = World {
            conversation: Conversation::new(spec, start),
            start,
            now: start,
            pending: Vec::new(),
            log: Vec::new(),
            answers: answers.iter().cloned().collect(),
            tools: HashMap::new(),
            calls_made: 0,
            mic_probability: 0.02,
            mic_next: start,
        };
        world.input(Input::ParticipantJoined { present: 1 });
        world
    }

    fn tool(mut self, name: &'static str, behaviour: Behaviour) -> World {
        self.tools.insert(name, behaviour);
        self
    }

    fn ms(&self) -> u64 {
        self.now.duration_since(self.start).as_millis() as u64
    }

    fn input(&mut self, input: Input) {
        self.conversation.handle_input(self.now, input);
        self.drain();
    }

    fn think(&mut self, text: &str) {
        self.input(Input::Command(Command::Agent(AgentCommand::think(text))));
    }

    fn schedule(&mut self, after: Duration, input: Input) {
        self.pending.push((self.now + after, input));
    }

    fn drain(&mut self) -> Instant {
        loop {
            let output = self.conversation.poll_output();
            if let Output::Timeout(deadline) = output {
                return deadline;
            }
            self.react(&output);
            self.log.push((self.ms(), output));
        }
    }

    fn react(&mut self, output: &Output) {
        match output.clone() {
            Output::Provider(ProviderCommand::LlmStart { turn, .. }) => {
                let answer =
                    if self.answers.len() > 1 { self.answers.pop_front() } else { self.answers.front().cloned() };
                let answer = answer.expect("an answer");
                if let Answer::Says(text) | Answer::SaysAndCalls(text, _) = answer {
                    self.schedule(LLM_ANSWER, Input::Llm(LlmInput::Delta { turn, text: text.into() }));
                }
                match answer {
                    Answer::Calls(calls) | Answer::SaysAndCalls(_, calls) => {
                        for (name, arguments) in calls {
                            self.calls_made += 1;
                            let call = ToolCall {
                                id: format!("call_{}", self.calls_made),
                                name: (*name).into(),
                                arguments: (*arguments).into(),
                            };
                            self.schedule(LLM_ANSWER, Input::Llm(LlmInput::ToolCall { turn, call }));
                        }
                    }
                    Answer::Says(_) => {}
                }
                let done = LlmInput::Done { turn, prompt_tokens: None, completion_tokens: None };
                self.schedule(LLM_ANSWER, Input::Llm(done));
            }
            Output::Provider(ProviderCommand::AsrFinish { turn }) => {
                let text = "what is the weather".into();
                self.schedule(Duration::from_millis(100), Input::Asr(AsrInput::Final { turn, text }));
            }
            Output::Provider(ProviderCommand::TtsSpeak { turn, clause, text, .. }) => {
                // 250 ms of audio per word.
                let pcm = vec![500i16; text.split_whitespace().count() * 12_000];
                self.schedule(Duration::from_millis(50), Input::Tts(TtsInput::Audio { turn, clause, pcm }));
                self.schedule(Duration::from_millis(50), Input::Tts(TtsInput::Done { turn, clause }));
            }
            Output::Tool(ToolCommand::Call { turn, call, .. }) => {
                match self.tools.get(call.name.as_str()).cloned().expect("a scripted tool") {
                    Behaviour::After(delay, outcome) => {
                        let result = ToolInput::Result { turn, call_id: call.id, outcome };
                        self.schedule(delay, Input::Tool(result));
                    }
                    Behaviour::Hangs => {}
                }
            }
            // Cancelled calls' results still come (a cancel may come too late): the core must
            // drop them by their turn.
            _ => {}
        }
    }

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

    fn user_speaks(&mut self, duration: Duration) {
        self.mic_probability = 0.95;
        self.run(duration);
        self.mic_probability = 0.02;
    }

    /// Each LLM request's turn and tools, with when it was made.
    fn llm_requests(&self) -> Vec<(u64, TurnId, ToolUse)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Provider(ProviderCommand::LlmStart { turn, tools, .. }) => Some((*at, *turn, tools.clone())),
                _ => None,
            })
            .collect()
    }

    fn tool_commands(&self) -> Vec<(u64, ToolCommand)> {
        self.log
            .iter()
            .filter_map(|(at, o)| if let Output::Tool(c) = o { Some((*at, c.clone())) } else { None })
            .collect()
    }

    /// `tool.started` and `tool.finished` as clients see them.
    fn tool_events(&self) -> Vec<ToolEvent> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Client(ClientEvent::ToolStarted { call_id, .. }) => Some((*at, call_id.clone(), None)),
                Output::Client(ClientEvent::ToolFinished { call_id, duration_ms, end, .. }) => {
                    Some((*at, call_id.clone(), Some((*duration_ms, *end))))
                }
                _ => None,
            })
            .collect()
    }

    fn tts_texts(&self) -> Vec<(u64, String)> {
        self.log
            .iter()
            .filter_map(|(at, o)| match o {
                Output::Provider(ProviderCommand::TtsSpeak { text, .. }) => Some((*at, text.clone())),
                _ => None,
            })
            .collect()
    }

    fn turns(&self) -> Vec<(TurnId, TurnEnd, TurnMetrics)> {
        self.log
            .iter()
            .filter_map(|(_, o)| match o {
                Output::Turn { turn, end, metrics, .. } => Some((*turn, *end, *metrics)),
                _ => None,
            })
            .collect()
    }
}

fn call(id: &str, name: &str, arguments: &str) -> ToolCall {
    ToolCall { id: id.into(), name: name.into(), arguments: arguments.into() }
}

fn ok(json: &str) -> ToolOutcome {
    ToolOutcome::Ok(json.into())
}

fn ms(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

#[test]
fn parallel_calls_run_at_once_and_their_results_go_back_to_the_llm_in_the_order_asked() {
    let answers = [Answer::Calls(&[("weather", r#"{"city":"Paris"}"#), ("time", "{}")]), Answer::Says("It is sunny.")];
    let mut world = World::new(spec(), &answers)
        .tool("weather", Behaviour::After(ms(300), ok(r#"{"sky":"sunny"}"#)))
        .tool("time", Behaviour::After(ms(100), ok(r#"{"time":"noon"}"#)));
    world.think("What is the weather in Paris?");
    world.run(ms(3000));

    let turn = TurnId(1);
    // Both calls leave when the answer that asked for them is complete, not one after the other.
    let weather = call("call_1", "weather", r#"{"city":"Paris"}"#);
    let time = call("call_2", "time", "{}");
    assert_eq!(
        world.tool_commands(),
        [
            (100, ToolCommand::Call { turn, call: weather.clone(), timeout_ms: 2000 }),
            (100, ToolCommand::Call { turn, call: time.clone(), timeout_ms: 2000 }),
        ]
    );
    // The LLM is asked again when the slower one is back, with the agent's tools and the round.
    let requests = world.llm_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].2.rounds, []);
    assert_eq!(requests[0].2.choice, ToolChoice::Auto);
    assert_eq!(requests[0].2.functions.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["weather", "time"]);
    assert_eq!(requests[1].0, 400);
    assert_eq!(requests[1].2.choice, ToolChoice::Auto);
    let round = &requests[1].2.rounds[0];
    assert_eq!(round.calls, [(weather, ok(r#"{"sky":"sunny"}"#)), (time, ok(r#"{"time":"noon"}"#))]);
    // Both requests carry the same conversation.
    let messages = |i: usize| match &world
        .log
        .iter()
        .filter(|(_, o)| matches!(o, Output::Provider(ProviderCommand::LlmStart { .. })))
        .nth(i)
        .unwrap()
        .1
    {
        Output::Provider(ProviderCommand::LlmStart { messages, .. }) => messages.clone(),
        _ => unreachable!(),
    };
    assert_eq!(messages(0), messages(1));
    assert_eq!(messages(1).last().unwrap().content, "What is the weather in Paris?");

    // Clients saw each call start, and end with its own duration.
    assert_eq!(
        world.tool_events(),
        [
            (100, "call_1".to_owned(), None),
            (100, "call_2".to_owned(), None),
            (200, "call_2".to_owned(), Some((100, ToolEnd::Ok))),
            (400, "call_1".to_owned(), Some((300, ToolEnd::Ok))),
        ]
    );

    // The answer is said; no filler, as the round took less than 800 ms.
    assert_eq!(world.tts_texts().into_iter().map(|(_, t)| t).collect::<Vec<_>>(), ["It is sunny."]);
    assert_eq!(world.turns().len(), 1);
    let (_, end, metrics) = world.turns()[0];
    assert_eq!(end, TurnEnd::Ok);
    assert_eq!(metrics.tool_ms, Some(300));
    assert_eq!(metrics.llm_ttft_ms, Some(500), "calls are not words: the first word came after the round");
}

#[test]
fn a_slow_tool_gets_one_filler_and_a_timeout_goes_back_as_an_error_result() {
    let answers = [Answer::Calls(&[("weather", "{}")]), Answer::Says("I could not find out.")];
    let late = Behaviour::After(ms(2600), ok("{}"));
    let mut world = World::new(spec(), &answers).tool("weather", late.clone());
    world.think("Weather?");
    world.run(ms(5000));

    // The filler is said 800 ms into the round, the call times out at 2 s and the LLM is told so.
    let texts = world.tts_texts();
    assert_eq!(texts[0], (900, "One moment.".to_owned()));
    let requests = world.llm_requests();
    assert_eq!(requests.len(), 2, "the late result asks nothing: {requests:?}");
    assert_eq!(requests[1].0, 2100);
    let (_, outcome) = &requests[1].2.rounds[0].calls[0];
    assert_eq!(*outcome, ToolOutcome::Failed("no result after 2000 ms".into()));
    assert_eq!(texts[1].1, "I could not find out.");
    assert_eq!(world.turns()[0].1, TurnEnd::Ok);
    assert_eq!(world.turns()[0].2.tool_ms, Some(2000));
    assert_eq!(world.tool_events()[1], (2100, "call_1".to_owned(), Some((2000, ToolEnd::Failed))));

    // With no fillers, the agent stays silent while it waits.
    let mut quiet = spec();
    quiet.tools.fillers.clear();
    let mut world = World::new(quiet, &answers).tool("weather", Behaviour::Hangs);
    world.think("Weather?");
    world.run(ms(5000));
    assert_eq!(world.tts_texts().into_iter().map(|(_, t)| t).collect::<Vec<_>>(), ["I could not find out."]);
    let _ = late;
}

#[test]
fn an_unknown_tool_and_a_failed_call_go_back_as_error_results_and_the_turn_goes_on() {
    let answers = [Answer::Calls(&[("teleport", "{}"), ("weather", "{}")]), Answer::Says("Sorry about that.")];
    let failure = ToolOutcome::Failed("the tool answered 500 Internal Server Error".into());
    let mut world = World::new(spec(), &answers).tool("weather", Behaviour::After(ms(50), failure.clone()));
    world.think("Beam me up.");
    world.run(ms(3000));

    // Only the real tool is called.
    let commands = world.tool_commands();
    assert_eq!(commands.len(), 1);
    assert!(matches!(&commands[0].1, ToolCommand::Call { call, .. } if call.name == "weather"));
    let requests = world.llm_requests();
    let outcomes: Vec<_> = requests[1].2.rounds[0].calls.iter().map(|(c, o)| (c.name.as_str(), o.clone())).collect();
    assert_eq!(
        outcomes,
        [("teleport", ToolOutcome::Failed("there is no tool named \"teleport\"".into())), ("weather", failure)]
    );
    assert_eq!(world.turns()[0].1, TurnEnd::Ok);
    assert_eq!(world.tts_texts()[0].1, "Sorry about that.");
}

#[test]
fn rounds_are_limited_and_the_request_after_the_last_one_forbids_calls() {
    let mut limited = spec();
    limited.tools.max_rounds = 2;
    let mut world =
        World::new(limited, &[Answer::Calls(&[("time", "{}")])]).tool("time", Behaviour::After(ms(10), ok("{}")));
    world.think("Loop forever.");
    world.run(ms(3000));

    let requests = world.llm_requests();
    let choices: Vec<_> = requests.iter().map(|(_, _, tools)| (tools.rounds.len(), tools.choice)).collect();
    assert_eq!(choices, [(0, ToolChoice::Auto), (1, ToolChoice::Auto), (2, ToolChoice::None)]);
    // The third answer asked for calls anyway: none is made, and the turn ends.
    assert_eq!(world.tool_commands().len(), 2);
    assert_eq!(world.turns().len(), 1);
    assert_eq!(world.turns()[0].1, TurnEnd::Ok);
}

#[test]
fn barge_in_cancels_the_running_calls_and_their_late_results_are_dropped() {
    let weather = Answer::Calls(&[("weather", "{}")]);
    let answers = [weather.clone(), weather, Answer::Says("Here is the weather.")];
    // Each call's result comes 3 s late: the first one's after the user has spoken again.
    let mut world = World::new(spec(), &answers).tool("weather", Behaviour::After(ms(3000), ok(r#"{"sky":"grey"}"#)));
    world.run(ms(500));
    world.user_speaks(ms(800));
    world.run(ms(1500));
    let first = TurnId(1);
    assert!(
        world.tool_commands().iter().any(|(_, c)| matches!(c, ToolCommand::Call { turn, .. } if *turn == first)),
        "{:?}",
        world.tool_commands()
    );
    // The user speaks over the filler and the call.
    world.user_speaks(ms(800));
    world.run(ms(6000));

    let commands = world.tool_commands();
    assert!(commands.iter().any(|(_, c)| *c == ToolCommand::Cancel { turn: first }), "{commands:?}");
    let ends: Vec<_> = world.tool_events().into_iter().filter_map(|(_, id, end)| Some((id, end?.1))).collect();
    assert_eq!(ends[0], ("call_1".to_owned(), ToolEnd::Cancelled), "{ends:?}");
    // The first turn never asked the LLM again: its call's result came for a turn that was over.
    let requests = world.llm_requests();
    assert_eq!(requests.iter().filter(|(_, turn, _)| *turn == first).count(), 1, "{requests:?}");
    let turns = world.turns();
    assert_eq!(turns[0].0, first);
    assert_eq!(turns[0].1, TurnEnd::Interrupted);
    // The new utterance is a turn of its own with its own round, answered in the end.
    let second = turns[1].0;
    assert!(second > first);
    assert_eq!(requests.iter().filter(|(_, turn, _)| *turn == second).count(), 2);
    assert_eq!(turns[1].1, TurnEnd::Ok);
}

fn with_end_call() -> AgentSpec {
    let mut spec = spec();
    spec.tools.available.push(Tool::end_call());
    spec
}

fn leaves(world: &World) -> Vec<(u64, LeaveReason)> {
    world.log.iter().filter_map(|(at, o)| if let Output::Leave(r) = o { Some((*at, *r)) } else { None }).collect()
}

#[test]
fn end_call_says_the_goodbye_then_leaves() {
    // The goodbye in the answer that ends the call: said, then the agent leaves, asking nothing more.
    let mut world = World::new(with_end_call(), &[Answer::SaysAndCalls("Goodbye, take care.", &[("end_call", "{}")])]);
    world.think("That is all, bye.");
    world.run(ms(3000));
    assert_eq!(world.llm_requests().len(), 1);
    assert!(world.tool_commands().is_empty(), "the core answers end_call itself");
    assert_eq!(world.tts_texts()[0].1, "Goodbye, take care.");
    let last_frame = world.log.iter().filter(|(_, o)| matches!(o, Output::Play { .. })).map(|(at, _)| *at).max();
    let left = leaves(&world);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].1, LeaveReason::EndedByAgent);
    assert!(left[0].0 >= last_frame.unwrap(), "the goodbye is played before the agent leaves: {left:?}");

    // A silent end_call: the LLM is asked once more, with no calls allowed, for the goodbye.
    let answers = [Answer::Calls(&[("end_call", "{}")]), Answer::Says("Bye now.")];
    let mut world = World::new(with_end_call(), &answers);
    world.think("Hang up.");
    world.run(ms(3000));
    let requests = world.llm_requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].2.choice, ToolChoice::None);
    assert!(requests[1].2.rounds[0].calls[0].1.is_ok());
    assert_eq!(world.tts_texts()[0].1, "Bye now.");
    assert_eq!(leaves(&world).len(), 1);

    // Without end_call among its tools, the agent stays whatever the LLM asks.
    let mut world = World::new(spec(), &answers);
    world.think("Hang up.");
    world.run(ms(3000));
    assert!(leaves(&world).is_empty());
}
