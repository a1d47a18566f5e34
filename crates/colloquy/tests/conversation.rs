//! Voice turns end to end over real UDP with the embedded models: a spoken question gets a spoken
//! answer whose audio says what the agent's transcript says, and talking over a long answer stops
//! the agent's audio with a `message.interrupt`. Needs the models (`scripts/fetch-models`).

mod common;

/// The two calls run one after the other: each runs every model on this machine's cores, and the
/// barge-in test times its interruption against the agent's answer.
static ONE_CALL_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

use std::process::Command;

use colloquy_providers::wer::{letter_error_rate, word_error_rate};
use common::{colloquy, compose, hear, say};
use serde_json::{Value, json};

#[test]
fn the_demo_answers_a_spoken_question_and_the_answer_audio_says_what_its_transcript_says() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let question = dir.path().join("question.wav");
    let reply = dir.path().join("reply.wav");
    say("What is the capital of France?", &question);
    let output = colloquy(&["demo", "--wav", question.to_str().unwrap(), "--out", reply.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let summary: Value = stderr
        .lines()
        .find_map(|l| l.strip_prefix("demo summary: "))
        .map(|json| serde_json::from_str(json).unwrap())
        .unwrap_or_else(|| panic!("no summary in {stderr}"));
    eprintln!("{}", String::from_utf8_lossy(&output.stdout));

    let user = summary["user_text"].as_str().unwrap().to_lowercase();
    assert!(user.contains("capital") && user.contains("france"), "{summary}");
    assert_eq!(summary["agent_turn_status"], 1, "{summary}");
    let agent_text = summary["agent_text"].as_str().unwrap();
    assert!(agent_text.split_whitespace().count() >= 3, "{summary}");
    let turn = &summary["turns"]["turns"][0];
    assert_eq!((turn["start"].as_str(), turn["end"].as_str()), (Some("voice_input"), Some("ok")), "{summary}");
    for stage in ["eou_delay_ms", "asr_ttlw_ms", "llm_ttft_ms", "llm_ttfs_ms", "tts_ttfb_ms", "e2e_ms"] {
        assert!(turn["metrics"][stage].as_u64().is_some(), "{stage} missing: {summary}");
    }
    assert!(summary["voice_to_voice_ms"].as_u64().is_some(), "{summary}");

    // The recorded answer, through Opus and back, says what the agent said it said. Letters, not
    // words: Whisper tiny hears "France is" as "Francis", which is two word errors of six but
    // one letter of twenty-five.
    let heard = hear(&reply);
    let (wer, cer) = (word_error_rate(agent_text, &heard), letter_error_rate(agent_text, &heard));
    eprintln!("agent said {agent_text:?}; the recording says {heard:?}; WER {wer:.2}, letter error rate {cer:.2}");
    assert!(cer <= 0.15, "agent said {agent_text:?}, the recording says {heard:?} (letter error rate {cer:.2})");
}

#[test]
fn talking_over_a_long_answer_stops_the_agents_audio_with_a_message_interrupt() {
    let _one = ONE_CALL_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = common::start_with_media(&dir.path().join("data"), "", &[]);
    let (status, agent) = runtime.block_on(server.post(
        "/v1/agents",
        json!({
            "name": "storyteller", "channel": "story", "idle_timeout": 0,
            "llm": {"system_messages": [{"role": "system", "content":
                "You are a storyteller. Always answer with a long story of at least ten sentences."}],
                "params": {"temperature": 0.0, "max_tokens": 300}}
        }),
    ));
    assert_eq!(status, 200, "{agent}");

    let (ask, stop, call) = (dir.path().join("ask.wav"), dir.path().join("stop.wav"), dir.path().join("call.wav"));
    say("Please tell me a long story about a dragon and a brave knight.", &ask);
    say("Stop, stop. Wait a moment please, I have another question.", &stop);
    // The answer starts one and a half to four seconds after the question (more on a busy machine)
    // and lasts a minute; talk over it eight seconds after the question.
    compose(&[Err(0.5), Ok(&ask), Err(8.0), Ok(&stop), Err(4.0)], &call);

    let output = Command::new(env!("CARGO_BIN_EXE_colloquy"))
        .args(["call", "--server", &server.base, "--channel", "story", "--uid", "listener", "--play"])
        .arg(&call)
        .env("COLLOQUY_API_KEY", common::KEY)
        .env("COLLOQUY_API_SECRET", common::SECRET)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let messages: Vec<Value> =
        String::from_utf8_lossy(&output.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    for message in &messages {
        eprintln!("{message}");
    }
    let summary: Value =
        serde_json::from_str(stderr.lines().find_map(|l| l.strip_prefix("call summary: ")).expect("a summary"))
            .unwrap();

    let interrupt = messages
        .iter()
        .find(|m| m["object"] == "message.interrupt")
        .unwrap_or_else(|| panic!("no message.interrupt; summary {summary}"));
    let turn = interrupt["turn_id"].clone();
    let cut = messages
        .iter()
        .find(|m| m["object"] == "assistant.transcription" && m["turn_id"] == turn && m["turn_status"] == 2)
        .expect("the interrupted answer, marked interrupted");
    let heard = cut["text"].as_str().unwrap();
    let spoken: Vec<&str> = messages
        .iter()
        .filter(|m| m["object"] == "assistant.transcription" && m["turn_id"] == turn && m["turn_status"] == 0)
        .filter_map(|m| m["text"].as_str())
        .collect();
    let full = spoken.last().copied().unwrap_or_default();
    assert!(!heard.is_empty(), "the interruption came before the agent said anything: {messages:?}");
    assert!(full.starts_with(heard.trim_end_matches(['.', ',']).trim()), "{heard:?} vs {full:?}");

    // The agent's audio stopped: the span of sound around the interruption ends within 300 ms of it
    // (a frame or two in flight, plus the network), and the next sound, if any, is a new answer.
    let interrupted_at_us = interrupt["ts"].as_u64().unwrap() * 1000;
    let spans: Vec<(u64, u64)> = serde_json::from_value(summary["heard_spans_unix_us"].clone()).unwrap();
    let speaking = spans
        .iter()
        .find(|(start, end)| *start <= interrupted_at_us && interrupted_at_us <= end + 300_000)
        .unwrap_or_else(|| panic!("no sound heard around the interruption at {interrupted_at_us}: {spans:?}"));
    assert!(
        speaking.1 <= interrupted_at_us + 300_000,
        "sound went on {} ms after the interruption: {spans:?}",
        (speaking.1 - interrupted_at_us) / 1000
    );

    // The history says what was heard, marked interrupted.
    let id = agent["agent_id"].as_str().unwrap();
    let (_, history) = runtime.block_on(server.get(&format!("/v1/agents/{id}/history")));
    let entries = history["history"].as_array().cloned().unwrap_or_default();
    let interrupted: Vec<&Value> =
        entries.iter().filter(|e| e["interrupted"] == true && e["turn_id"] == turn).collect();
    assert_eq!(interrupted.len(), 1, "{history}");
    assert_eq!(
        (&interrupted[0]["role"], &interrupted[0]["content"]),
        (&json!("assistant"), &json!(heard)),
        "{history}"
    );
}
