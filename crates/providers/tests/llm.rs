//! The embedded LLM (SmolLM2-135M-Instruct, GGUF, through candle): it answers, streams, stops
//! where it is told, stops when dropped, and refuses files it cannot run. Needs the model
//! (`scripts/fetch-models`).
//!
//! The tests take turns on the model (one lock), so that each runs alone on the machine's cores and
//! the figures `measures_load_time_memory_first_token_and_speed` prints mean something.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use colloquy_model::{LlmParams, PromptRole};
use colloquy_providers::embedded::LocalLlm;
use colloquy_providers::llm::{ChatMessage, LlmEvent, LlmProvider, LlmRequest, ToolUse};
use colloquy_providers::models::{SMOLLM2_135M, models_dir};
use colloquy_providers::{ProviderError, TurnId};
use futures_util::StreamExt;

static TURNS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn llm() -> &'static LocalLlm {
    static LLM: OnceLock<LocalLlm> = OnceLock::new();
    LLM.get_or_init(|| {
        LocalLlm::load(&models_dir().join(SMOLLM2_135M)).expect("SmolLM2 loads (run scripts/fetch-models)")
    })
}

const VOICE_SYSTEM: &str = "You are a helpful voice assistant. Answer in one or two short spoken sentences.";

fn message(role: PromptRole, content: &str) -> ChatMessage {
    ChatMessage { role, content: content.into() }
}

fn request(messages: Vec<ChatMessage>, temperature: f32, max_tokens: u32) -> LlmRequest {
    LlmRequest {
        turn: TurnId(7),
        messages,
        params: LlmParams { temperature, top_p: 1.0, max_tokens },
        tools: ToolUse::none(),
    }
}

fn question(text: &str, max_tokens: u32) -> LlmRequest {
    request(vec![message(PromptRole::System, VOICE_SYSTEM), message(PromptRole::User, text)], 0.0, max_tokens)
}

/// An answer's text, token counts and time to its first delta, after checking the events' order.
#[derive(Debug)]
struct Answer {
    text: String,
    prompt_tokens: u32,
    completion_tokens: u32,
    first_delta: Duration,
    total: Duration,
}

async fn answer(llm: &LocalLlm, request: LlmRequest) -> Answer {
    let started = Instant::now();
    let turn = request.turn;
    let events: Vec<_> = llm
        .chat(request)
        .map(|event| (event.expect("the answer streams without errors"), started.elapsed()))
        .collect()
        .await;
    let (deltas, tail) = events.split_at(events.len().saturating_sub(2));
    let mut text = String::new();
    for (event, _) in deltas {
        match event {
            LlmEvent::Delta { turn: t, text: delta } if *t == turn => text.push_str(delta),
            other => panic!("expected only deltas before the usage and the end, got {other:?}"),
        }
    }
    let [(LlmEvent::Usage { turn: t1, prompt_tokens, completion_tokens }, _), (LlmEvent::Done { turn: t2 }, total)] =
        tail
    else {
        panic!("expected the usage then the end, got {tail:?}");
    };
    assert_eq!((*t1, *t2), (turn, turn));
    assert!(deltas.len() <= *completion_tokens as usize, "at most one delta per token");
    let first_delta = deltas.first().map_or(*total, |(_, at)| *at);
    Answer { text, prompt_tokens: *prompt_tokens, completion_tokens: *completion_tokens, first_delta, total: *total }
}

/// Whether two greedy answers are the same but for a near-tie or two. With the KV cache the
/// prompt's attention is computed step by step rather than in one batch, so its sums run in
/// another order; on some CPUs (AMD EPYC here) a near-tie between two tokens then goes the other
/// way ("main" for "primary") although the cache is right. A wrong cache gives another answer
/// altogether: here at least 80% of the longer answer's words must stand, in order, in both.
#[track_caller]
fn assert_same_answer(a: &str, b: &str) {
    let (a_words, b_words): (Vec<&str>, Vec<&str>) = (a.split_whitespace().collect(), b.split_whitespace().collect());
    let mut common = vec![vec![0usize; b_words.len() + 1]; a_words.len() + 1];
    for i in 0..a_words.len() {
        for j in 0..b_words.len() {
            common[i + 1][j + 1] =
                if a_words[i] == b_words[j] { common[i][j] + 1 } else { common[i][j + 1].max(common[i + 1][j]) };
        }
    }
    let longest = a_words.len().max(b_words.len()).max(1);
    let shared = common[a_words.len()][b_words.len()];
    assert!(shared * 10 >= longest * 8, "{shared} of {longest} words in common:\n  {a:?}\n  {b:?}");
}

async fn error(llm: &LocalLlm, request: LlmRequest) -> ProviderError {
    let events: Vec<_> = llm.chat(request).collect().await;
    match events.as_slice() {
        [Err(e)] => e.clone(),
        other => panic!("expected one error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn greedy_answer_knows_the_capital_of_france() {
    let _turn = TURNS.lock().await;
    let answer = answer(llm(), question("What is the capital of France?", 48)).await;
    eprintln!("{answer:?}");
    assert!(answer.text.contains("Paris"), "{:?}", answer.text);
    assert!((20..80).contains(&answer.prompt_tokens), "{answer:?}");
    assert!((1..=48).contains(&answer.completion_tokens), "{answer:?}");
    assert!(!answer.text.contains("<|im_end|>") && !answer.text.contains("<|im_start|>"), "{:?}", answer.text);
}

/// Waits until no generation runs; how long that took.
async fn idle(llm: &LocalLlm, within: Duration) -> Duration {
    let started = Instant::now();
    while llm.active_generations() > 0 {
        assert!(started.elapsed() < within, "a generation is still running after {within:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_turn_reuses_the_last_one_and_answers_the_same() {
    let _turn = TURNS.lock().await;
    let llm = LocalLlm::load(&models_dir().join(SMOLLM2_135M)).unwrap();
    let first = vec![message(PromptRole::System, VOICE_SYSTEM), message(PromptRole::User, "Name a big city in Italy.")];
    let turn1 = answer(&llm, request(first.clone(), 0.0, 24)).await;
    let mut second = first;
    second.push(message(PromptRole::Assistant, &turn1.text));
    second.push(message(PromptRole::User, "And one in Spain?"));

    let reused = llm.reused_prompt_tokens();
    let cached = answer(&llm, request(second.clone(), 0.0, 24)).await;
    let reused = llm.reused_prompt_tokens() - reused;
    llm.set_kv_cache(false);
    let before = llm.reused_prompt_tokens();
    let uncached = answer(&llm, request(second, 0.0, 24)).await;
    assert_eq!(llm.reused_prompt_tokens(), before, "nothing is reused with the cache off");
    eprintln!(
        "turn 2: {} of {} prompt tokens reused; first delta {:?} (cached) vs {:?}",
        reused, cached.prompt_tokens, cached.first_delta, uncached.first_delta
    );
    // The whole first turn, prompt and answer, is in the cache; the answer is the same without it.
    assert!(reused >= u64::from(turn1.prompt_tokens + turn1.completion_tokens), "{reused} {turn1:?}");
    assert!(cached.prompt_tokens > turn1.prompt_tokens + turn1.completion_tokens);
    assert_same_answer(&cached.text, &uncached.text);
}

#[tokio::test]
async fn the_gguf_template_renders_chatml() {
    let _turn = TURNS.lock().await;
    let messages = [
        message(PromptRole::System, "Be brief."),
        message(PromptRole::User, "Hi"),
        message(PromptRole::Assistant, "Hello!"),
        message(PromptRole::User, "Bye"),
    ];
    assert_eq!(
        llm().render(&messages).unwrap(),
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_answers_do_not_mix() {
    let _turn = TURNS.lock().await;
    let llm = llm();
    let one = || question("What is the capital of Germany?", 16);
    let two = || question("Name a fruit that is yellow.", 16);
    let alone = (answer(llm, one()).await.text, answer(llm, two()).await.text);
    let (a, b) = tokio::join!(answer(llm, one()), answer(llm, two()));
    assert_eq!((a.text, b.text), alone);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_tokens_is_honoured() {
    let _turn = TURNS.lock().await;
    let answer = answer(llm(), question("Tell me a long story about a dragon.", 5)).await;
    assert_eq!(answer.completion_tokens, 5, "{answer:?}");
    assert!(!answer.text.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cached_system_prefix_gives_the_same_answer() {
    let _turn = TURNS.lock().await;
    let llm = LocalLlm::load(&models_dir().join(SMOLLM2_135M)).unwrap();
    let request = || question("Name three colours of the rainbow.", 24);
    llm.set_kv_cache(false);
    let whole = answer(&llm, request()).await;
    llm.set_kv_cache(true);
    let miss = answer(&llm, request()).await;
    let hit = answer(&llm, request()).await;
    eprintln!(
        "first delta: whole prompt {:?}, prefix miss {:?}, prefix hit {:?}",
        whole.first_delta, miss.first_delta, hit.first_delta
    );
    assert_same_answer(&whole.text, &miss.text);
    assert_same_answer(&whole.text, &hit.text);
    assert_eq!((whole.prompt_tokens, miss.prompt_tokens), (hit.prompt_tokens, hit.prompt_tokens));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_the_generation() {
    let _turn = TURNS.lock().await;
    let llm = llm();
    let long = || question("Write a very long story about a dragon who learns to sing.", 120);
    // Left alone, this answer runs to its limit, for `rest` after its first delta.
    let full = answer(llm, long()).await;
    assert_eq!(full.completion_tokens, 120, "{full:?}");
    let rest = full.total - full.first_delta;
    idle(llm, Duration::from_secs(1)).await;

    let mut stream = llm.chat(long());
    let first = stream.next().await.unwrap().unwrap();
    assert!(matches!(first, LlmEvent::Delta { .. }), "{first:?}");
    assert_eq!(llm.active_generations(), 1);
    drop(stream);
    // Dropped, it stops at its next token: long before it would have ended.
    let stopped = idle(llm, rest / 4).await;
    eprintln!("the generation stopped {stopped:?} after the stream was dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_refused() {
    let _turn = TURNS.lock().await;
    let llm = llm();
    let e = error(llm, request(Vec::new(), 0.0, 8)).await;
    assert!(matches!(&e, ProviderError::BadResponse(m) if m.contains("no messages")), "{e:?}");
    let essay = "word ".repeat(llm.context_length() + 10);
    let e = error(llm, question(&essay, 8)).await;
    assert!(matches!(&e, ProviderError::BadResponse(m) if m.contains("context")), "{e:?}");
}

#[test]
fn unusable_files_name_the_fetch_command() {
    let missing = models_dir().join("no-such-model.gguf");
    let e = LocalLlm::load(&missing).unwrap_err();
    assert!(e.to_string().contains("scripts/fetch-models"), "{e}");
    assert!(e.to_string().contains("no-such-model.gguf"), "{e}");

    let dir = std::env::temp_dir().join(format!("colloquy-llm-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.gguf");
    std::fs::write(&garbage, b"this is not a model, just some text that is long enough to read").unwrap();
    let e = LocalLlm::load(&garbage).unwrap_err();
    assert!(e.to_string().contains("not a GGUF file") && e.to_string().contains("scripts/fetch-models"), "{e}");

    // A valid GGUF of an architecture that does not run.
    use candle_core::quantized::gguf_file::{Value, write};
    let other = dir.join("mamba.gguf");
    let mut file = std::fs::File::create(&other).unwrap();
    write(&mut file, &[("general.architecture", &Value::String("mamba".into()))], &[]).unwrap();
    drop(file);
    let e = LocalLlm::load(&other).unwrap_err();
    assert!(e.to_string().contains("\"mamba\" is not supported (supported: llama)"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn resident_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn measures_load_time_memory_first_token_and_speed() {
    let _turn = TURNS.lock().await;
    let before = resident_kib();
    let started = Instant::now();
    let llm = LocalLlm::load(&models_dir().join(SMOLLM2_135M)).unwrap();
    let load = started.elapsed();
    let added = resident_kib().saturating_sub(before);
    let voice = |text: &str| question(text, 64);
    let cold = answer(&llm, voice("What's the weather usually like in Lisbon in spring?")).await;
    let warm = answer(&llm, voice("And how about in winter?")).await;
    let long = answer(&llm, question("Tell me a story about a lighthouse keeper.", 128)).await;
    let decode = long.total.saturating_sub(long.first_delta);
    let speed = f64::from(long.completion_tokens.saturating_sub(1)) / decode.as_secs_f64();
    eprintln!(
        "SmolLM2-135M Q4_1: load {load:?}, resident memory +{} MiB; voice prompt of {} tokens: first delta {:?} \
         (system prefix computed), {:?} ({} tokens, system prefix cached); {speed:.0} tokens/s over {} tokens",
        added / 1024,
        cold.prompt_tokens,
        cold.first_delta,
        warm.first_delta,
        warm.prompt_tokens,
        long.completion_tokens
    );
    assert!(speed > 1.0, "{speed} tokens/s");
}
