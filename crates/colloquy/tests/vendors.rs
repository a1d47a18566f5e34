//! Speech vendors end to end over real UDP: an agent that hears through a fake Deepgram and speaks
//! through a fake ElevenLabs (both speaking their vendors' WebSocket protocols, `providers/tests/
//! fakes`), whose transcripts come from our embedded Whisper and whose audio comes from Piper, so
//! the caller's voice and the agent's really flow through both protocols. Needs the models.

mod common;
#[path = "../../providers/tests/fakes/mod.rs"]
mod fakes;

use std::process::Command;
use std::sync::Arc;

use colloquy_providers::wer::letter_error_rate;
use common::{compose, hear, say};
use fakes::{deepgram, elevenlabs};

/// The calls run one after the other: each runs the embedded models, and the fakes run Whisper and
/// Piper besides, on this machine's cores.
static ONE_CALL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
use serde_json::{Value, json};

/// Whisper's transcript of 16 kHz samples, through `colloquy asr` (the final result only: the
/// interim ones would run Whisper every half second).
fn whisper(dir: &std::path::Path) -> deepgram::Transcriber {
    let dir = dir.to_owned();
    Arc::new(move |samples: &[i16], is_final: bool| {
        if !is_final {
            return String::new();
        }
        let path = dir.join(format!("heard-{}.wav", samples.len()));
        colloquy_rtc::audio::write_wav(&path, samples, 16_000).unwrap();
        hear(&path)
    })
}

/// Piper's voice for `text` at `rate`, through `colloquy tts`.
fn piper(dir: &std::path::Path) -> elevenlabs::Synthesizer {
    let dir = dir.to_owned();
    Arc::new(move |text: &str, rate: u32| {
        let path = dir.join(format!("said-{}.wav", text.len()));
        say(text, &path);
        let (audio, from) = colloquy_rtc::audio::read_wav(&path).unwrap();
        colloquy_rtc::audio::to_i16(&colloquy_rtc::audio::resample(&audio, from, rate))
    })
}

/// Asks "What is the capital of France?" in `channel` as `caller`, leaving 16 s for the answer (the
/// fake voices start a Piper process per clause), and records what is heard into `reply`; answers
/// the data-channel messages.
fn ask(server: &common::Server, dir: &std::path::Path, channel: &str, reply: &std::path::Path) -> Vec<Value> {
    let (question, call) = (dir.join("q.wav"), dir.join("call.wav"));
    say("What is the capital of France?", &question);
    // Silence long enough for the answer on a loaded machine (the fakes run Whisper and Piper).
    compose(&[Err(0.5), Ok(&question), Err(30.0)], &call);
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", &server.base, "--channel", channel, "--uid", "caller", "--play"])
        .arg(&call)
        .arg("--record")
        .arg(reply)
        .env("COLLOQUY_API_KEY", common::KEY)
        .env("COLLOQUY_API_SECRET", common::SECRET)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
}

#[test]
fn a_call_hears_through_deepgram_and_speaks_through_elevenlabs() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deepgram = runtime.block_on(deepgram::start(deepgram::Mode::Normal, whisper(dir.path())));
    let (elevenlabs, spoken) = runtime.block_on(elevenlabs::start(elevenlabs::Mode::Normal, piper(dir.path())));
    let server = common::start_with_media(&dir.path().join("data"), "", &[]);
    let (status, agent) = runtime.block_on(server.post(
        "/v1/agents",
        json!({
            "name": "vendors", "channel": "vendors", "idle_timeout": 0,
            "llm": {"system_messages": [{"role": "system", "content": "Answer in one short sentence."}],
                    "params": {"temperature": 0.0, "max_tokens": 40}},
            "asr": {"vendor": "deepgram", "params": {
                "key": deepgram::KEY, "url": format!("ws://{}/v1/listen", deepgram.addr), "smart_format": true}},
            "tts": {"vendor": "elevenlabs", "params": {
                "key": elevenlabs::KEY, "voice_id": elevenlabs::VOICE,
                "base_url": format!("ws://{}/v1", elevenlabs.addr), "sample_rate": 16000}}
        }),
    ));
    assert_eq!(status, 200, "{agent}");
    assert_eq!(agent["config"]["asr"]["params"]["key"], "<redacted>", "{agent}");
    assert_eq!(agent["config"]["tts"]["params"]["key"], "<redacted>", "{agent}");
    assert!(!agent.to_string().contains(deepgram::KEY) && !agent.to_string().contains(elevenlabs::KEY));

    let reply = dir.path().join("reply.wav");
    let messages = ask(&server, dir.path(), "vendors", &reply);

    // The caller's question went to Deepgram as audio, and its transcript came back.
    let user = messages
        .iter()
        .find(|m| m["object"] == "user.transcription" && m["final"] == true)
        .unwrap_or_else(|| panic!("no final user transcript: {messages:?}"));
    let user = user["text"].as_str().unwrap().to_lowercase();
    assert!(user.contains("capital") && user.contains("france"), "{user:?}");
    let shake = &deepgram.handshakes()[0];
    assert_eq!(shake.header("authorization"), Some(format!("Token {}", deepgram::KEY).as_str()));
    assert_eq!(shake.query("smart_format"), Some("true"));

    // The answer went to ElevenLabs as text, and its audio is what the caller heard.
    let answer = messages
        .iter()
        .filter(|m| m["object"] == "assistant.transcription" && m["turn_status"] == 1)
        .filter_map(|m| m["text"].as_str())
        .next_back()
        .unwrap_or_else(|| panic!("no finished answer: {messages:?}"))
        .to_owned();
    let sent = spoken.lock().unwrap().texts.join("");
    assert!(!sent.trim().is_empty(), "nothing reached ElevenLabs");
    assert!(letter_error_rate(&answer, sent.trim()) <= 0.05, "answer {answer:?}, sent to ElevenLabs {sent:?}");
    let heard = hear(&reply);
    let cer = letter_error_rate(&answer, &heard);
    eprintln!("agent said {answer:?}; the caller heard {heard:?}; letter error rate {cer:.2}");
    assert!(cer <= 0.2, "agent said {answer:?}, the caller heard {heard:?} ({cer:.2})");
}

/// The vendor voice breaks off in the middle of the answer: the failure is reported, and the
/// fallback voice says the failure message and speaks from then on.
#[test]
fn when_the_vendor_voice_dies_mid_answer_the_fallback_finishes_the_call() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (elevenlabs, spoken) = runtime.block_on(elevenlabs::start(elevenlabs::Mode::CutMidStream, piper(dir.path())));
    let server = common::start_with_media(&dir.path().join("data"), "", &[]);
    let failure = "Sorry, my voice broke. This is my backup voice.";
    let (status, agent) = runtime.block_on(server.post(
        "/v1/agents",
        json!({
            "name": "fallback", "channel": "fallback", "idle_timeout": 0, "failure_message": failure,
            "llm": {"system_messages": [{"role": "system", "content": "Answer in two sentences."}],
                    "params": {"temperature": 0.0, "max_tokens": 60}},
            "tts": {"vendor": "elevenlabs", "params": {
                "key": elevenlabs::KEY, "voice_id": elevenlabs::VOICE,
                "base_url": format!("ws://{}/v1", elevenlabs.addr), "sample_rate": 16000,
                // The fake's voice is Piper in a process of its own: on a loaded machine its first
                // audio may take longer than the default 10 s, which is not the failure played.
                "timeout_ms": 60000},
                "fallback": [{"vendor": "local"}]}
        }),
    ));
    assert_eq!(status, 200, "{agent}");

    let reply = dir.path().join("reply.wav");
    let messages = ask(&server, dir.path(), "fallback", &reply);
    let error = messages
        .iter()
        .find(|m| m["object"] == "message.error")
        .unwrap_or_else(|| panic!("the failure was not reported: {messages:?}"));
    assert_eq!(error["module"], "tts", "{error}");
    assert!(
        messages
            .iter()
            .any(|m| m["object"] == "assistant.transcription" && m["text"] == failure && m["turn_status"] == 1),
        "the failure message was not said: {messages:?}"
    );
    assert_eq!(spoken.lock().unwrap().texts.len(), 1, "one clause went to the vendor, then the fallback spoke");
    let heard = hear(&reply).to_lowercase();
    assert!(heard.contains("backup"), "the caller heard {heard:?}");
}

#[test]
fn a_vendor_the_node_does_not_have_is_refused_naming_those_it_has() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = common::start(&dir.path().join("data"), true);
    let (status, body) = runtime.block_on(server.post(
        "/v1/agents",
        json!({"name": "a", "channel": "c", "tts": {"vendor": "humeai", "params": {"api_key": "k"}}}),
    ));
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["field"], "tts.vendor", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("humeai") && message.contains("elevenlabs"), "{message}");
    let (status, body) = runtime.block_on(server.post(
        "/v1/agents",
        json!({"name": "a", "channel": "c", "asr": {"vendor": "deepgram", "params": {"key": "k", "modle": "nova-3"}}}),
    ));
    assert_eq!((status, body["error"]["field"].as_str()), (400, Some("asr.params.modle")), "{body}");
}

/// `colloquy asr|tts --vendor` reach the vendors by hand, the endpoint replaced with `--url`.
#[test]
fn the_command_line_tries_a_vendor_by_hand() {
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let deepgram = runtime.block_on(deepgram::start(deepgram::Mode::Normal, deepgram::counting()));
    let (elevenlabs, _) = runtime.block_on(elevenlabs::start(elevenlabs::Mode::Normal, elevenlabs::tone()));

    let wav = dir.path().join("said.wav");
    let key = format!("key={}", elevenlabs::KEY);
    let voice = format!("voice_id={}", elevenlabs::VOICE);
    let url = format!("ws://{}/v1", elevenlabs.addr);
    let args = ["tts", "Hello there.", "--vendor", "elevenlabs", "--param", &key, "--param", &voice, "--param"];
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(args)
        .args(["sample_rate=16000", "--url", &url, "-o", wav.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let (samples, rate) = colloquy_rtc::audio::read_wav(&wav).unwrap();
    assert_eq!((rate, samples.len()), (16_000, (elevenlabs::tone())("Hello there.", 16_000).len()));

    let key = format!("key={}", deepgram::KEY);
    let url = format!("ws://{}/v1/listen", deepgram.addr);
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["asr", wav.to_str().unwrap(), "--vendor", "deepgram", "--param", &key, "--param", "smart_format=true"])
        .args(["--url", &url])
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), format!("heard {} samples", samples.len()));

    // A parameter the vendor does not take is named; so is a vendor there is not.
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["asr", wav.to_str().unwrap(), "--vendor", "deepgram", "--param", "modle=x"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("--param modle"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["asr", wav.to_str().unwrap(), "--vendor", "acme"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("there are: deepgram"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}
