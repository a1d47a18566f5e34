//! The speech vendors' clients against local fakes of their documented protocols (`fakes/`), with
//! the failures each vendor plays: a wrong key, rate limits, a slow answer, a stream cut in the
//! middle, frames that are not the vendor's.

mod fakes;

use std::sync::Arc;
use std::time::Duration;

use colloquy_model::{SpeechKind, VendorChoice};
use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::vendors;
use colloquy_providers::{ProviderError, TurnId};
use fakes::{
    assemblyai, bytedance, cartesia, dashscope, deepgram, elevenlabs, microsoft, microsoft_stt, minimax, tencent,
};
use futures_util::StreamExt;

fn choice(kind: SpeechKind, vendor: &str, params: serde_json::Value) -> VendorChoice {
    let params = params.as_object().cloned().expect("an object");
    vendors::check(kind, vendor, params).expect("a vendor").expect("valid params")
}

// ---- Deepgram ----

fn deepgram(fake: &fakes::Fake, extra: serde_json::Value) -> Arc<dyn AsrProvider> {
    let mut params = serde_json::json!({"key": deepgram::KEY, "url": format!("ws://{}/v1/listen", fake.addr)});
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::asr(&choice(SpeechKind::Asr, "deepgram", params)).expect("a client")
}

/// One utterance of `secs` seconds of a quiet tone, sent in 20 ms frames, and every event back.
async fn utterance(asr: &dyn AsrProvider, secs: f32) -> Vec<Result<AsrEvent, ProviderError>> {
    let (audio, receiver) = tokio::sync::mpsc::channel(1024);
    let mut events = asr.transcribe(AsrRequest { turn: TurnId(7), language: "de".into(), audio: receiver });
    let frames = (secs * 50.0) as usize;
    for i in 0..frames {
        let frame: Vec<f32> = (0..320).map(|n| (((i * 320 + n) as f32) * 0.05).sin() * 0.1).collect();
        if audio.send(frame).await.is_err() {
            break;
        }
    }
    drop(audio);
    let mut out = Vec::new();
    while let Some(event) =
        tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("an event in time")
    {
        out.push(event);
    }
    out
}

#[tokio::test]
async fn deepgram_streams_the_utterance_and_answers_its_whole_transcript() {
    let fake = deepgram::start(deepgram::Mode::Normal, deepgram::counting()).await;
    let asr = deepgram(
        &fake,
        serde_json::json!({"smart_format": true, "keyterm": ["colloquy", "Agora"], "endpointing": 300}),
    );
    let events = utterance(asr.as_ref(), 1.0).await;
    let events: Vec<AsrEvent> = events.into_iter().map(|e| e.expect("no error")).collect();
    assert!(
        events.iter().any(|e| matches!(e, AsrEvent::Partial { turn: TurnId(7), text } if text == "heard 8000 samples")),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&AsrEvent::Final { turn: TurnId(7), text: "heard 16000 samples".into() }));
    let shake = &fake.handshakes()[0];
    assert_eq!(shake.header("authorization"), Some("Token dg-test-key"));
    for (name, value) in [
        ("model", "nova-3"),
        ("language", "de"),
        ("interim_results", "true"),
        ("smart_format", "true"),
        ("endpointing", "300"),
    ] {
        assert_eq!(shake.query(name), Some(value), "{name} in {:?}", shake.query);
    }
    let terms: Vec<&str> = shake.query.iter().filter(|(k, _)| k == "keyterm").map(|(_, v)| v.as_str()).collect();
    assert_eq!(terms, ["colloquy", "Agora"]);
}

#[tokio::test]
async fn deepgram_failures_are_typed() {
    let fake = deepgram::start(deepgram::Mode::WrongKey, deepgram::counting()).await;
    let events = utterance(deepgram(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::Auth(m))] if m.contains("Invalid credentials")), "{events:?}");
    assert_eq!(fake.connection_count(), 1, "a refused key is not retried");

    let fake = deepgram::start(deepgram::Mode::RateLimited, deepgram::counting()).await;
    let events = utterance(deepgram(&fake, serde_json::json!({"max_retries": 1})).as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::RateLimited { retry_after: Some(_), .. })]), "{events:?}");
    assert_eq!(fake.connection_count(), 2, "one retry after the Retry-After");

    let fake = deepgram::start(deepgram::Mode::SlowFinal(Duration::from_secs(3)), deepgram::counting()).await;
    let events = utterance(deepgram(&fake, serde_json::json!({"timeout_ms": 300})).as_ref(), 0.2).await;
    assert!(
        matches!(events.last(), Some(Err(ProviderError::CutStream(m))) if m.contains("no final transcript")),
        "{events:?}"
    );

    let fake = deepgram::start(deepgram::Mode::CutAfterFrames(10), deepgram::counting()).await;
    let events = utterance(deepgram(&fake, serde_json::json!({})).as_ref(), 1.0).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::CutStream(m))) if m.contains("1011")), "{events:?}");

    let fake = deepgram::start(deepgram::Mode::Garbage, deepgram::counting()).await;
    let events = utterance(deepgram(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::BadResponse(m))) if m.contains("502")), "{events:?}");

    // Nobody listening: refused at once, named.
    let events = utterance(
        vendors::asr(&choice(
            SpeechKind::Asr,
            "deepgram",
            serde_json::json!({"key": "k", "url": "ws://127.0.0.1:9/v1/listen", "max_retries": 0}),
        ))
        .unwrap()
        .as_ref(),
        0.1,
    )
    .await;
    assert!(matches!(&events[..], [Err(ProviderError::Unavailable(_))]), "{events:?}");
}

#[tokio::test]
async fn dropping_a_deepgram_stream_cancels_it() {
    let fake = deepgram::start(deepgram::Mode::Normal, deepgram::counting()).await;
    let asr = deepgram(&fake, serde_json::json!({}));
    let (audio, receiver) = tokio::sync::mpsc::channel(1024);
    let mut events = asr.transcribe(AsrRequest { turn: TurnId(1), language: "en".into(), audio: receiver });
    for _ in 0..30 {
        audio.send(vec![0.01; 320]).await.unwrap();
    }
    let first = tokio::time::timeout(Duration::from_secs(5), events.next()).await.expect("a partial");
    assert!(matches!(first, Some(Ok(AsrEvent::Partial { .. }))), "{first:?}");
    drop(events);
    // The client's task lets go of the audio: the engine's sender sees it closed.
    tokio::time::timeout(Duration::from_secs(5), audio.closed()).await.expect("the recognition stopped");
}

// ---- ElevenLabs ----

fn elevenlabs(fake: &fakes::Fake, extra: serde_json::Value) -> Arc<dyn TtsProvider> {
    let mut params = serde_json::json!({
        "key": elevenlabs::KEY,
        "voice_id": elevenlabs::VOICE,
        "base_url": format!("ws://{}/v1", fake.addr),
        "sample_rate": 16000,
    });
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::tts(&choice(SpeechKind::Tts, "elevenlabs", params)).expect("a client")
}

async fn say(tts: &dyn TtsProvider, text: &str, speed: f32) -> (Vec<i16>, Vec<u32>, Option<ProviderError>) {
    let request = TtsRequest { turn: TurnId(3), text: text.into(), voice: elevenlabs::VOICE.into(), speed };
    let mut chunks = tts.synthesize(request);
    let (mut pcm, mut rates) = (Vec::new(), Vec::new());
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), chunks.next()).await.expect("a chunk in time")
    {
        match chunk {
            Ok(chunk) => {
                assert_eq!(chunk.turn, TurnId(3));
                rates.push(chunk.sample_rate);
                pcm.extend(chunk.pcm);
            }
            Err(error) => return (pcm, rates, Some(error)),
        }
    }
    (pcm, rates, None)
}

#[tokio::test]
async fn elevenlabs_speaks_the_whole_clause_as_pcm() {
    let (fake, received) = elevenlabs::start(elevenlabs::Mode::Normal, elevenlabs::tone()).await;
    let tts = elevenlabs(&fake, serde_json::json!({"stability": 0.5, "model_id": "eleven_turbo_v2_5"}));
    let (pcm, rates, error) = say(tts.as_ref(), "Hello there.", 1.5).await;
    assert_eq!(error, None);
    // 12 characters at 10 ms each, at 16 kHz, every sample through the odd-sized chunks.
    assert_eq!(pcm, (elevenlabs::tone())("Hello there.", 16_000));
    assert!(rates.iter().all(|r| *r == 16_000));
    let shake = &fake.handshakes()[0];
    assert_eq!(shake.header("xi-api-key"), Some(elevenlabs::KEY));
    assert_eq!(shake.query("output_format"), Some("pcm_16000"));
    assert_eq!(shake.query("model_id"), Some("eleven_turbo_v2_5"));
    let received = received.lock().unwrap().clone();
    assert_eq!(received.texts, ["Hello there. "]);
    let settings = &received.openings[0]["voice_settings"];
    assert_eq!(settings["stability"], 0.5);
    // The agent's speed 1.5 is beyond ElevenLabs' 0.7–1.2: the nearest it takes.
    assert!((settings["speed"].as_f64().unwrap() - 1.2).abs() < 1e-6, "{settings}");
}

#[tokio::test]
async fn elevenlabs_failures_are_typed() {
    let (fake, _) = elevenlabs::start(elevenlabs::Mode::WrongKey, elevenlabs::tone()).await;
    let (_, _, error) = say(elevenlabs(&fake, serde_json::json!({})).as_ref(), "Hi.", 1.0).await;
    assert!(matches!(&error, Some(ProviderError::Auth(m)) if m.contains("Invalid API key")), "{error:?}");

    let (fake, _) = elevenlabs::start(elevenlabs::Mode::RateLimited, elevenlabs::tone()).await;
    let (_, _, error) = say(elevenlabs(&fake, serde_json::json!({"max_retries": 0})).as_ref(), "Hi.", 1.0).await;
    assert!(matches!(&error, Some(ProviderError::RateLimited { .. })), "{error:?}");
    assert_eq!(fake.connection_count(), 1);

    let (fake, _) =
        elevenlabs::start(elevenlabs::Mode::SlowFirstAudio(Duration::from_secs(3)), elevenlabs::tone()).await;
    let (pcm, _, error) = say(elevenlabs(&fake, serde_json::json!({"timeout_ms": 300})).as_ref(), "Hi.", 1.0).await;
    assert!(pcm.is_empty());
    assert!(matches!(&error, Some(ProviderError::Timeout(_))), "{error:?}");

    let (fake, _) = elevenlabs::start(elevenlabs::Mode::CutMidStream, elevenlabs::tone()).await;
    let long = "This sentence is long enough to need several chunks of audio.";
    let (pcm, _, error) = say(elevenlabs(&fake, serde_json::json!({})).as_ref(), long, 1.0).await;
    assert!(!pcm.is_empty(), "the first half played");
    assert!(matches!(&error, Some(ProviderError::CutStream(_))), "{error:?}");

    let (fake, _) = elevenlabs::start(elevenlabs::Mode::Garbage, elevenlabs::tone()).await;
    let (_, _, error) = say(elevenlabs(&fake, serde_json::json!({})).as_ref(), "Hi.", 1.0).await;
    assert!(matches!(&error, Some(ProviderError::BadResponse(_))), "{error:?}");

    let (fake, _) = elevenlabs::start(elevenlabs::Mode::QuotaExceeded, elevenlabs::tone()).await;
    let (_, _, error) = say(elevenlabs(&fake, serde_json::json!({})).as_ref(), "Hi.", 1.0).await;
    assert!(
        matches!(&error, Some(ProviderError::RateLimited { message, .. }) if message.contains("quota")),
        "{error:?}"
    );
}

#[test]
fn the_registry_refuses_what_a_vendor_does_not_take() {
    let refuse = |kind, vendor: &str, params: serde_json::Value| {
        vendors::check(kind, vendor, params.as_object().cloned().unwrap()).unwrap().unwrap_err()
    };
    let error =
        refuse(SpeechKind::Tts, "elevenlabs", serde_json::json!({"key": "k", "voice_id": "v", "sample_rate": 12000}));
    assert_eq!(error.field, "sample_rate");
    let error = refuse(
        SpeechKind::Tts,
        "elevenlabs",
        serde_json::json!({"key": "k", "voice_id": "v", "base_url": "https://x"}),
    );
    assert_eq!(error.field, "base_url");
    let error = refuse(SpeechKind::Asr, "deepgram", serde_json::json!({"key": "k", "endpointing": -1}));
    assert_eq!(error.field, "endpointing");
    let error = refuse(SpeechKind::Asr, "deepgram", serde_json::json!({"key": 5}));
    assert_eq!(error.field, "key");
    let error = refuse(SpeechKind::Tts, "cosyvoice", serde_json::json!({"api_key": "k", "voice": "v", "rate": 3.0}));
    assert_eq!(error.field, "rate");
    let error = refuse(SpeechKind::Asr, "paraformer", serde_json::json!({"api_key": "k", "max_sentence_silence": 10}));
    assert_eq!(error.field, "max_sentence_silence");
    assert_eq!(vendors::names(SpeechKind::Asr), ["deepgram", "assemblyai", "microsoft", "paraformer", "tencent"]);
    assert_eq!(
        vendors::names(SpeechKind::Tts),
        ["elevenlabs", "microsoft", "cartesia", "minimax", "bytedance", "cosyvoice", "deepgram"]
    );
}

// ---- DashScope: Paraformer and CosyVoice ----

fn engines() -> dashscope::Engines {
    dashscope::Engines { transcribe: deepgram::counting(), synthesize: elevenlabs::tone() }
}

fn paraformer(fake: &fakes::Fake, extra: serde_json::Value) -> Arc<dyn AsrProvider> {
    let mut params =
        serde_json::json!({"api_key": dashscope::KEY, "url": format!("ws://{}/api-ws/v1/inference", fake.addr)});
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::asr(&choice(SpeechKind::Asr, "paraformer", params)).expect("a client")
}

fn cosyvoice(fake: &fakes::Fake, extra: serde_json::Value) -> Arc<dyn TtsProvider> {
    let mut params = serde_json::json!({
        "api_key": dashscope::KEY, "voice": "longxiaochun_v2", "sample_rate": 16000,
        "url": format!("ws://{}/api-ws/v1/inference", fake.addr),
    });
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::tts(&choice(SpeechKind::Tts, "cosyvoice", params)).expect("a client")
}

#[tokio::test]
async fn paraformer_runs_a_recognition_task_per_utterance() {
    let (fake, received) = dashscope::start(dashscope::Mode::Normal, engines()).await;
    let asr = paraformer(&fake, serde_json::json!({"vocabulary_id": "vocab-1", "workspace": "ws-1"}));
    let events: Vec<AsrEvent> = utterance(asr.as_ref(), 1.0).await.into_iter().map(|e| e.expect("no error")).collect();
    assert!(
        events.iter().any(|e| matches!(e, AsrEvent::Partial { text, .. } if text == "heard 8000 samples")),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&AsrEvent::Final { turn: TurnId(7), text: "heard 16000 samples".into() }));
    let shake = &fake.handshakes()[0];
    assert_eq!(shake.header("authorization"), Some(format!("Bearer {}", dashscope::KEY).as_str()));
    assert_eq!(shake.header("x-dashscope-workspace"), Some("ws-1"));
    let run = received.lock().unwrap().run_tasks[0].clone();
    assert_eq!((run["task"].as_str(), run["function"].as_str()), (Some("asr"), Some("recognition")));
    assert_eq!(run["model"], "paraformer-realtime-v2");
    assert_eq!(run["parameters"]["format"], "pcm");
    assert_eq!(run["parameters"]["language_hints"], serde_json::json!(["de"]), "from the agent's language");
    assert_eq!(run["parameters"]["vocabulary_id"], "vocab-1");
}

#[tokio::test]
async fn cosyvoice_speaks_a_clause_per_task() {
    let (fake, received) = dashscope::start(dashscope::Mode::Normal, engines()).await;
    let tts = cosyvoice(&fake, serde_json::json!({"volume": 60}));
    let request =
        TtsRequest { turn: TurnId(3), text: "你好，世界。".into(), voice: "longxiaochun_v2".into(), speed: 1.2 };
    let mut chunks = tts.synthesize(request);
    let mut pcm = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("no error");
        assert_eq!(chunk.sample_rate, 16_000);
        pcm.extend(chunk.pcm);
    }
    assert_eq!(pcm, (elevenlabs::tone())("你好，世界。", 16_000));
    let received = received.lock().unwrap().clone();
    assert_eq!(received.texts, ["你好，世界。"]);
    let run = &received.run_tasks[0];
    assert_eq!((run["task"].as_str(), run["function"].as_str()), (Some("tts"), Some("SpeechSynthesizer")));
    let parameters = &run["parameters"];
    assert_eq!((parameters["voice"].as_str(), parameters["format"].as_str()), (Some("longxiaochun_v2"), Some("pcm")));
    assert_eq!(parameters["volume"], 60);
    assert!((parameters["rate"].as_f64().unwrap() - 1.2).abs() < 1e-6, "the agent's speed: {parameters}");
}

#[tokio::test]
async fn dashscope_failures_are_typed() {
    let (fake, _) = dashscope::start(dashscope::Mode::WrongKey, engines()).await;
    let events = utterance(paraformer(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::Auth(m))] if m.contains("Invalid API-key")), "{events:?}");

    let (fake, _) = dashscope::start(dashscope::Mode::Throttled, engines()).await;
    let (_, _, error) = say_with(cosyvoice(&fake, serde_json::json!({})).as_ref(), "Hi.").await;
    assert!(matches!(&error, Some(ProviderError::RateLimited { .. })), "{error:?}");

    let (fake, _) = dashscope::start(dashscope::Mode::SlowStart(Duration::from_secs(3)), engines()).await;
    let events = utterance(paraformer(&fake, serde_json::json!({"timeout_ms": 300})).as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::Timeout(_))]), "{events:?}");

    let (fake, _) = dashscope::start(dashscope::Mode::CutMidTask, engines()).await;
    let events = utterance(paraformer(&fake, serde_json::json!({})).as_ref(), 1.0).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::CutStream(_)))), "{events:?}");
    let (fake, _) = dashscope::start(dashscope::Mode::CutMidTask, engines()).await;
    let long = "This sentence is long enough to need several chunks of audio.";
    let (pcm, _, error) = say_with(cosyvoice(&fake, serde_json::json!({})).as_ref(), long).await;
    assert!(!pcm.is_empty(), "the first half played");
    assert!(matches!(&error, Some(ProviderError::CutStream(_))), "{error:?}");

    let (fake, _) = dashscope::start(dashscope::Mode::Garbage, engines()).await;
    let (_, _, error) = say_with(cosyvoice(&fake, serde_json::json!({})).as_ref(), "Hi.").await;
    assert!(matches!(&error, Some(ProviderError::BadResponse(_))), "{error:?}");
}

async fn say_with(tts: &dyn TtsProvider, text: &str) -> (Vec<i16>, Vec<u32>, Option<ProviderError>) {
    let request = TtsRequest { turn: TurnId(3), text: text.into(), voice: String::new(), speed: 1.0 };
    let mut chunks = tts.synthesize(request);
    let (mut pcm, mut rates) = (Vec::new(), Vec::new());
    while let Some(chunk) = tokio::time::timeout(Duration::from_secs(10), chunks.next()).await.expect("a chunk in time")
    {
        match chunk {
            Ok(chunk) => {
                rates.push(chunk.sample_rate);
                pcm.extend(chunk.pcm);
            }
            Err(error) => return (pcm, rates, Some(error)),
        }
    }
    (pcm, rates, None)
}

// ---- Deepgram Aura ----

#[tokio::test]
async fn deepgram_aura_speaks_a_clause_and_its_failures_are_typed() {
    let (fake, texts) = deepgram::start_speak(deepgram::SpeakMode::Normal, elevenlabs::tone()).await;
    let params = serde_json::json!({"key": deepgram::KEY, "base_url": format!("ws://{}/v1/speak", fake.addr), "sample_rate": 16000});
    let tts = vendors::tts(&choice(SpeechKind::Tts, "deepgram", params)).unwrap();
    let (pcm, rates, error) = say_with(tts.as_ref(), "Hello there.").await;
    assert_eq!(error, None);
    assert_eq!(pcm, (elevenlabs::tone())("Hello there.", 16_000));
    assert!(rates.iter().all(|r| *r == 16_000));
    assert_eq!(texts.lock().unwrap().clone(), ["Hello there."]);
    let shake = &fake.handshakes()[0];
    assert_eq!(
        (shake.query("model"), shake.header("authorization")),
        (Some("aura-2-thalia-en"), Some("Token dg-test-key"))
    );

    for (mode, expect) in [
        (deepgram::SpeakMode::WrongKey, "auth"),
        (deepgram::SpeakMode::RateLimited, "rate"),
        (deepgram::SpeakMode::SlowFirstAudio(Duration::from_secs(3)), "timeout"),
        (deepgram::SpeakMode::CutMidStream, "cut"),
        (deepgram::SpeakMode::Garbage, "bad"),
    ] {
        let (fake, _) = deepgram::start_speak(mode, elevenlabs::tone()).await;
        let params = serde_json::json!({"key": deepgram::KEY, "base_url": format!("ws://{}/v1/speak", fake.addr),
                                        "timeout_ms": 300, "max_retries": 0});
        let tts = vendors::tts(&choice(SpeechKind::Tts, "deepgram", params)).unwrap();
        let long = "This sentence is long enough to need several chunks of audio.";
        let (_, _, error) = say_with(tts.as_ref(), long).await;
        assert_eq!(kind_of(&error), expect, "{mode:?}: {error:?}");
    }
}

// ---- Microsoft Azure ----

fn azure(server: &microsoft::Server, extra: serde_json::Value) -> Arc<dyn TtsProvider> {
    let mut params = serde_json::json!({
        "key": microsoft::KEY, "region": "eastus", "voice_name": "en-US-AndrewMultilingualNeural",
        "base_url": format!("http://{}", server.addr), "sample_rate": 16000,
    });
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::tts(&choice(SpeechKind::Tts, "microsoft", params)).unwrap()
}

#[tokio::test]
async fn azure_speaks_ssml_with_the_voice_style_and_rate() {
    let server = microsoft::start(microsoft::Mode::Normal, elevenlabs::tone()).await;
    let tts = azure(&server, serde_json::json!({"style": "cheerful", "style_degree": 1.5, "volume": 70}));
    let request = TtsRequest { turn: TurnId(3), text: "Fish & chips <now>.".into(), voice: String::new(), speed: 1.2 };
    let mut chunks = tts.synthesize(request);
    let mut pcm = Vec::new();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("no error");
        assert_eq!(chunk.sample_rate, 16_000);
        pcm.extend(chunk.pcm);
    }
    assert_eq!(
        pcm,
        (elevenlabs::tone())("Fish & chips <now>.", 16_000),
        "every sample, the text unescaped by the server"
    );
    let received = server.received.lock().unwrap().clone();
    assert_eq!(received.formats, ["raw-16khz-16bit-mono-pcm"]);
    let ssml = &received.ssml[0];
    for part in [
        "xml:lang=\"en-US\"",
        "<voice name=\"en-US-AndrewMultilingualNeural\">",
        "<mstts:express-as style=\"cheerful\" styledegree=\"1.5\">",
        "<prosody rate=\"+20%\" volume=\"70\">Fish &amp; chips &lt;now&gt;.</prosody>",
    ] {
        assert!(ssml.contains(part), "{part} in {ssml}");
    }
}

#[tokio::test]
async fn azure_failures_are_typed() {
    let server = microsoft::start(microsoft::Mode::WrongKey, elevenlabs::tone()).await;
    let (_, _, error) = say_with(azure(&server, serde_json::json!({})).as_ref(), "Hi.").await;
    assert!(matches!(&error, Some(ProviderError::Auth(_))), "{error:?}");
    let server = microsoft::start(microsoft::Mode::Throttled, elevenlabs::tone()).await;
    let (_, _, error) = say_with(azure(&server, serde_json::json!({"max_retries": 0})).as_ref(), "Hi.").await;
    assert!(matches!(&error, Some(ProviderError::RateLimited { retry_after: Some(_), .. })), "{error:?}");
    // A gateway's 502 page: unavailable, and retried (none allowed here).
    let server = microsoft::start(microsoft::Mode::BadGateway, elevenlabs::tone()).await;
    let (_, _, error) = say_with(azure(&server, serde_json::json!({"max_retries": 0})).as_ref(), "Hi.").await;
    assert!(matches!(&error, Some(ProviderError::Unavailable(m)) if m.contains("502")), "{error:?}");
    let server = microsoft::start(microsoft::Mode::CutMidStream, elevenlabs::tone()).await;
    let long = "This sentence is long enough to need several chunks of audio.";
    let (pcm, _, error) = say_with(azure(&server, serde_json::json!({})).as_ref(), long).await;
    assert!(!pcm.is_empty(), "the first half played");
    assert!(matches!(&error, Some(ProviderError::CutStream(_))), "{error:?}");
    let server = microsoft::start(microsoft::Mode::SlowFirstByte(Duration::from_secs(3)), elevenlabs::tone()).await;
    let (pcm, _, error) =
        say_with(azure(&server, serde_json::json!({"timeout_ms": 300, "max_retries": 0})).as_ref(), "Hi.").await;
    assert!(pcm.is_empty() && matches!(&error, Some(ProviderError::Timeout(_))), "{error:?}");
    // A voice name that would break the SSML is refused before anything is sent.
    let params = serde_json::json!({"key": "k", "region": "eastus", "voice_name": "a\"><x"});
    let error =
        vendors::check(SpeechKind::Tts, "microsoft", params.as_object().cloned().unwrap()).unwrap().unwrap_err();
    assert_eq!(error.field, "voice_name");
}

// ---- AssemblyAI ----

fn assembly(fake: &fakes::Fake, extra: serde_json::Value) -> Arc<dyn AsrProvider> {
    let mut params = serde_json::json!({"api_key": assemblyai::KEY, "url": format!("ws://{}/v3/ws", fake.addr)});
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::asr(&choice(SpeechKind::Asr, "assemblyai", params)).unwrap()
}

#[tokio::test]
async fn assemblyai_streams_a_session_per_utterance_and_keeps_the_formatted_turn() {
    let fake = assemblyai::start(assemblyai::Mode::Normal, deepgram::counting()).await;
    let asr = assembly(&fake, serde_json::json!({"keyterms_prompt": ["colloquy"], "language": "en-US"}));
    let events: Vec<AsrEvent> = utterance(asr.as_ref(), 1.0).await.into_iter().map(|e| e.expect("no error")).collect();
    assert!(
        events.iter().any(|e| matches!(e, AsrEvent::Partial { text, .. } if text == "heard 8000 samples")),
        "{events:?}"
    );
    // The formatted end of turn replaced the unformatted one.
    assert_eq!(events.last(), Some(&AsrEvent::Final { turn: TurnId(7), text: "heard 16000 samples".into() }));
    let shake = &fake.handshakes()[0];
    assert_eq!(shake.header("authorization"), Some(assemblyai::KEY));
    assert_eq!(shake.query("speech_model"), Some("universal-streaming-english"));
    assert_eq!(shake.query("keyterms_prompt"), Some(r#"["colloquy"]"#));
    assert_eq!(shake.query("sample_rate"), Some("16000"));

    let fake = assemblyai::start(assemblyai::Mode::WrongKey, deepgram::counting()).await;
    let events = utterance(assembly(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::Auth(_))]), "{events:?}");
    let fake = assemblyai::start(assemblyai::Mode::PolicyClose, deepgram::counting()).await;
    let events = utterance(assembly(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::Auth(m))) if m.contains("1008")), "{events:?}");
    let fake = assemblyai::start(assemblyai::Mode::Garbage, deepgram::counting()).await;
    let events = utterance(assembly(&fake, serde_json::json!({})).as_ref(), 1.0).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::BadResponse(_)))), "{events:?}");
    let fake = assemblyai::start(assemblyai::Mode::CutMidTurn, deepgram::counting()).await;
    let events = utterance(assembly(&fake, serde_json::json!({})).as_ref(), 1.0).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::CutStream(_)))), "{events:?}");
    let fake = assemblyai::start(assemblyai::Mode::TooManySessions, deepgram::counting()).await;
    let events = utterance(assembly(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert!(
        matches!(&events[..], [Err(ProviderError::RateLimited { message, .. })] if message.contains("3009")),
        "{events:?}"
    );
    let fake = assemblyai::start(assemblyai::Mode::SlowBegin(Duration::from_secs(3)), deepgram::counting()).await;
    let events = utterance(assembly(&fake, serde_json::json!({"timeout_ms": 300})).as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::Timeout(_))]), "{events:?}");
    // Another language picks the multilingual model.
    let fake = assemblyai::start(assemblyai::Mode::Normal, deepgram::counting()).await;
    utterance(assembly(&fake, serde_json::json!({})).as_ref(), 0.2).await;
    assert_eq!(
        fake.handshakes()[0].query("speech_model"),
        Some("universal-streaming-multilingual"),
        "the agent speaks de"
    );
}

// ---- Cartesia ----

#[tokio::test]
async fn cartesia_speaks_a_context_and_its_failures_are_typed() {
    let (fake, requests) = cartesia::start(cartesia::Mode::Normal, elevenlabs::tone()).await;
    let params = serde_json::json!({
        "api_key": cartesia::KEY, "model_id": "sonic-2", "voice": {"mode": "id", "id": "v-1"},
        "output_format": {"container": "raw", "sample_rate": 16000}, "language": "en",
        "url": format!("ws://{}/tts/websocket", fake.addr),
    });
    let tts = vendors::tts(&choice(SpeechKind::Tts, "cartesia", params.clone())).unwrap();
    let (pcm, rates, error) = say_with(tts.as_ref(), "Hello there.").await;
    assert_eq!(error, None);
    assert_eq!(pcm, (elevenlabs::tone())("Hello there.", 16_000));
    assert!(rates.iter().all(|r| *r == 16_000));
    let request = requests.lock().unwrap()[0].clone();
    assert_eq!((request["voice"]["id"].as_str(), request["language"].as_str()), (Some("v-1"), Some("en")));
    assert_eq!(request["output_format"]["encoding"], "pcm_s16le");
    assert_eq!(request["continue"], false);

    let mut bad = params.clone();
    bad["output_format"]["container"] = "mp3".into();
    let error = vendors::check(SpeechKind::Tts, "cartesia", bad.as_object().cloned().unwrap()).unwrap().unwrap_err();
    assert_eq!(error.field, "output_format.container");

    for (mode, expect) in [
        (cartesia::Mode::WrongKey, "auth"),
        (cartesia::Mode::Throttled, "rate"),
        (cartesia::Mode::CutMidStream, "cut"),
        (cartesia::Mode::Garbage, "bad"),
        (cartesia::Mode::SlowFirstAudio(Duration::from_secs(3)), "timeout"),
    ] {
        let (fake, _) = cartesia::start(mode, elevenlabs::tone()).await;
        let mut params = params.clone();
        params["url"] = format!("ws://{}/tts/websocket", fake.addr).into();
        params["max_retries"] = 0.into();
        params["timeout_ms"] = 300.into();
        let tts = vendors::tts(&choice(SpeechKind::Tts, "cartesia", params)).unwrap();
        let (_, _, error) =
            say_with(tts.as_ref(), "This sentence is long enough to need several chunks of audio.").await;
        assert_eq!(kind_of(&error), expect, "{mode:?}: {error:?}");
    }
}

// ---- MiniMax ----

#[tokio::test]
async fn minimax_speaks_a_task_and_its_failures_are_typed() {
    let (fake, received) = minimax::start(minimax::Mode::Normal, elevenlabs::tone()).await;
    let params = |fake: &fakes::Fake| {
        serde_json::json!({"api_key": minimax::KEY, "voice_id": "male-qn-qingse", "sample_rate": 16000, "pitch": 2,
                           "url": format!("ws://{}/ws/v1/t2a_v2", fake.addr), "max_retries": 0})
    };
    let tts = vendors::tts(&choice(SpeechKind::Tts, "minimax", params(&fake))).unwrap();
    let (pcm, rates, error) = say_with(tts.as_ref(), "你好。").await;
    assert_eq!(error, None);
    assert_eq!(pcm, (elevenlabs::tone())("你好。", 16_000));
    assert!(rates.iter().all(|r| *r == 16_000));
    // The client says task_finish on its way out; the fake may read it a moment later.
    for _ in 0..100 {
        if received.lock().unwrap().last().is_some_and(|m| m["event"] == "task_finish") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = received.lock().unwrap().clone();
    let start = &received[0];
    assert_eq!((start["event"].as_str(), start["model"].as_str()), (Some("task_start"), Some("speech-02-turbo")));
    assert_eq!(start["voice_setting"]["voice_id"], "male-qn-qingse");
    assert_eq!(start["voice_setting"]["pitch"], 2);
    assert_eq!(start["audio_setting"]["format"], "pcm");
    assert_eq!(received[1]["text"], "你好。");
    assert_eq!(received.last().unwrap()["event"], "task_finish");

    for (mode, expect) in [
        (minimax::Mode::WrongKey, "auth"),
        (minimax::Mode::Throttled, "rate"),
        (minimax::Mode::CutMidStream, "cut"),
        (minimax::Mode::Garbage, "bad"),
        (minimax::Mode::SlowStart(Duration::from_secs(3)), "timeout"),
    ] {
        let (fake, _) = minimax::start(mode, elevenlabs::tone()).await;
        let mut params = params(&fake);
        params["timeout_ms"] = 300.into();
        let tts = vendors::tts(&choice(SpeechKind::Tts, "minimax", params)).unwrap();
        let (_, _, error) =
            say_with(tts.as_ref(), "This sentence is long enough to need several chunks of audio.").await;
        assert_eq!(kind_of(&error), expect, "{mode:?}: {error:?}");
    }
}

// ---- ByteDance / Volcano Engine ----

fn volcano_params(fake: &fakes::Fake) -> serde_json::Value {
    // ZEGO's RegisterAgent sample, with our endpoint and rate.
    serde_json::json!({
        "app": {"appid": bytedance::APPID, "token": bytedance::TOKEN, "cluster": "volcano_tts"},
        "audio": {"voice_type": "zh_female_wanwanxiaohe_moon_bigtts", "rate": 16000},
        "url": format!("ws://{}/api/v1/tts/ws_binary", fake.addr), "max_retries": 0,
    })
}

#[tokio::test]
async fn bytedance_streams_zegos_sample_params_over_the_binary_protocol() {
    let (fake, requests) = bytedance::start(bytedance::Mode::Normal, elevenlabs::tone()).await;
    let choice = choice(SpeechKind::Tts, "bytedance", volcano_params(&fake));
    assert!(!choice.params["app"].as_object().unwrap().contains_key("token"), "the nested token is a secret");
    assert_eq!(choice.secrets["app.token"].expose(), bytedance::TOKEN);
    assert_eq!(choice.redacted_params()["app"]["token"], "<redacted>");
    assert_eq!(vendors::voice(&choice).as_deref(), Some("zh_female_wanwanxiaohe_moon_bigtts"));
    let tts = vendors::tts(&choice).unwrap();
    let request =
        TtsRequest {
            turn: TurnId(3), text: "你好，世界。今天天气很好。".into(), voice: String::new(), speed: 1.0
        };
    let mut chunks = tts.synthesize(request);
    let (mut pcm, mut pieces) = (Vec::new(), 0);
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.expect("no error");
        assert_eq!((chunk.sample_rate, chunk.turn), (16_000, TurnId(3)));
        pcm.extend(chunk.pcm);
        pieces += 1;
    }
    assert_eq!(
        pcm,
        (elevenlabs::tone())("你好，世界。今天天气很好。", 16_000),
        "every sample, across odd-sized frames"
    );
    assert!(pieces > 1, "the audio came as it was synthesised, not at the end: {pieces} pieces");
    let body = requests.lock().unwrap()[0].clone();
    assert_eq!(
        (body["audio"]["encoding"].as_str(), body["request"]["operation"].as_str()),
        (Some("pcm"), Some("submit"))
    );
    assert_eq!(body["audio"]["rate"], 16000);
    assert_eq!(fake.handshakes()[0].header("authorization"), Some(format!("Bearer; {}", bytedance::TOKEN).as_str()));

    let error = vendors::check(SpeechKind::Tts, "bytedance", {
        let mut p = volcano_params(&fake);
        p["app"]["tokn"] = "x".into();
        p.as_object().cloned().unwrap()
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(error.field, "app.tokn");
    let error = vendors::check(SpeechKind::Tts, "bytedance", {
        let mut p = volcano_params(&fake);
        p["url"] = "https://openspeech.bytedance.com/api/v1/tts".into();
        p.as_object().cloned().unwrap()
    })
    .unwrap()
    .unwrap_err();
    assert_eq!(error.field, "url");
}

#[tokio::test]
async fn bytedance_failures_are_typed() {
    for (mode, expect) in [
        (bytedance::Mode::WrongToken, "auth"),
        (bytedance::Mode::Busy, "rate"),
        (bytedance::Mode::UnknownVoice, "bad"),
        (bytedance::Mode::SlowFirstAudio(Duration::from_secs(3)), "timeout"),
        (bytedance::Mode::CutMidStream, "cut"),
        (bytedance::Mode::Garbage, "bad"),
    ] {
        let (fake, _) = bytedance::start(mode, elevenlabs::tone()).await;
        let mut params = volcano_params(&fake);
        params["timeout_ms"] = 300.into();
        let tts = vendors::tts(&choice(SpeechKind::Tts, "bytedance", params)).unwrap();
        let (pcm, _, error) =
            say_with(tts.as_ref(), "This sentence is long enough to need several chunks of audio.").await;
        assert_eq!(kind_of(&error), expect, "{mode:?}: {error:?}");
        assert_eq!(!pcm.is_empty(), expect == "cut", "{mode:?}: audio only before a cut");
    }
}

/// An error's kind, for the tables of failures.
fn kind_of(error: &Option<ProviderError>) -> &'static str {
    match error {
        None => "none",
        Some(ProviderError::Auth(_)) => "auth",
        Some(ProviderError::RateLimited { .. }) => "rate",
        Some(ProviderError::Timeout(_)) => "timeout",
        Some(ProviderError::Unavailable(_)) => "unavailable",
        Some(ProviderError::CutStream(_)) => "cut",
        Some(ProviderError::BadResponse(_)) => "bad",
    }
}

/// The last event's kind: an error's, or `final`.
fn last_kind(events: &[Result<AsrEvent, ProviderError>]) -> &'static str {
    match events.last() {
        Some(Ok(AsrEvent::Final { .. })) => "final",
        Some(Ok(AsrEvent::Partial { .. })) | None => "none",
        Some(Err(error)) => kind_of(&Some(error.clone())),
    }
}

// ---- Microsoft Azure recognition ----

fn azure_stt(fake: &fakes::Fake, extra: serde_json::Value) -> Arc<dyn AsrProvider> {
    let mut params =
        serde_json::json!({"key": microsoft_stt::KEY, "region": "eastus", "base_url": format!("ws://{}", fake.addr)});
    params.as_object_mut().unwrap().extend(extra.as_object().cloned().unwrap_or_default());
    vendors::asr(&choice(SpeechKind::Asr, "microsoft", params)).unwrap()
}

#[tokio::test]
async fn azure_recognises_in_real_time_with_partials() {
    let (fake, received) = microsoft_stt::start(microsoft_stt::Mode::Normal, deepgram::counting()).await;
    let events = utterance(azure_stt(&fake, serde_json::json!({"profanity": "raw"})).as_ref(), 1.0).await;
    let events: Vec<AsrEvent> = events.into_iter().map(|e| e.expect("no error")).collect();
    assert!(
        events.iter().any(|e| matches!(e, AsrEvent::Partial { turn: TurnId(7), text } if text == "heard 8000 samples")),
        "a hypothesis as a partial: {events:?}"
    );
    assert_eq!(events.last(), Some(&AsrEvent::Final { turn: TurnId(7), text: "heard 16000 samples".into() }));
    let shake = &fake.handshakes()[0];
    assert_eq!(shake.path, "/speech/recognition/conversation/cognitiveservices/v1");
    assert_eq!((shake.query("language"), shake.query("format")), (Some("de"), Some("simple")));
    assert_eq!(shake.query("profanity"), Some("raw"));
    // The client acknowledges the turn's end; the fake closes after it.
    for _ in 0..100 {
        if !received.lock().unwrap().telemetry.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let received = received.lock().unwrap().clone();
    assert_eq!(received.configs.len(), 1);
    assert!(received.configs[0]["context"]["os"]["platform"].is_string(), "{:?}", received.configs);
    let ids: std::collections::BTreeSet<&String> = received.audio_request_ids.iter().collect();
    assert_eq!(ids.len(), 1, "one request id for the utterance's audio");
    let telemetry = &received.telemetry[0];
    let paths: Vec<String> = telemetry["ReceivedMessages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m.as_object().unwrap().keys().cloned())
        .collect();
    assert_eq!(
        paths,
        ["turn.start", "speech.startDetected", "speech.hypothesis", "speech.endDetected", "speech.phrase", "turn.end"]
    );
    assert_eq!(telemetry["Metrics"][0]["Name"], "Connection");
    assert_eq!(telemetry["Metrics"][0]["Id"].as_str(), shake.header("x-connectionid"));
    // Another mode is another endpoint.
    let (fake, _) = microsoft_stt::start(microsoft_stt::Mode::Normal, deepgram::counting()).await;
    utterance(azure_stt(&fake, serde_json::json!({"mode": "interactive", "language": "en-GB"})).as_ref(), 0.2).await;
    let shake = &fake.handshakes()[0];
    assert_eq!(
        (shake.path.as_str(), shake.query("language")),
        ("/speech/recognition/interactive/cognitiveservices/v1", Some("en-GB"))
    );
}

#[tokio::test]
async fn azure_ends_the_audio_when_the_service_detects_the_end_of_speech() {
    let (fake, received) =
        microsoft_stt::start(microsoft_stt::Mode::EndOfSpeechAfter(8_000), deepgram::counting()).await;
    let asr = azure_stt(&fake, serde_json::json!({}));
    let (audio, receiver) = tokio::sync::mpsc::channel(1024);
    let mut events = asr.transcribe(AsrRequest { turn: TurnId(7), language: "en-US".into(), audio: receiver });
    let frame = |i: usize| (0..320).map(|n| (((i * 320 + n) as f32) * 0.05).sin() * 0.1).collect::<Vec<f32>>();
    for i in 0..40 {
        audio.send(frame(i)).await.unwrap();
    }
    // Azure said the speech ended after half a second: the client ends the audio it sends while
    // the engine's is still open.
    let mut waited = 0;
    while received.lock().unwrap().samples.is_empty() {
        assert!(waited < 1_000, "the client did not end its audio at Azure's end of speech");
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(received.lock().unwrap().samples, [8_000]);
    // The engine's later audio is taken and dropped; its end ends the recognition.
    for i in 40..50 {
        audio.send(frame(i)).await.expect("the client still takes audio");
    }
    drop(audio);
    let mut last = None;
    while let Some(event) = tokio::time::timeout(Duration::from_secs(10), events.next()).await.expect("in time") {
        last = Some(event.expect("no error"));
    }
    assert_eq!(last, Some(AsrEvent::Final { turn: TurnId(7), text: "heard 8000 samples".into() }));
}

#[tokio::test]
async fn azure_recognition_failures_are_typed() {
    for (mode, expect) in [
        (microsoft_stt::Mode::WrongKey, "auth"),
        (microsoft_stt::Mode::Throttled, "rate"),
        (microsoft_stt::Mode::TooManyRequests, "rate"),
        (microsoft_stt::Mode::SlowTurnStart(Duration::from_secs(3)), "timeout"),
        (microsoft_stt::Mode::CutAfterAudio(20), "cut"),
        (microsoft_stt::Mode::Garbage, "bad"),
    ] {
        let (fake, _) = microsoft_stt::start(mode, deepgram::counting()).await;
        let asr = azure_stt(&fake, serde_json::json!({"timeout_ms": 300, "max_retries": 0}));
        let events = utterance(asr.as_ref(), 1.0).await;
        assert_eq!(last_kind(&events), expect, "{mode:?}: {events:?}");
    }
    // A throttled handshake is retried after its Retry-After.
    let (fake, _) = microsoft_stt::start(microsoft_stt::Mode::Throttled, deepgram::counting()).await;
    utterance(azure_stt(&fake, serde_json::json!({"max_retries": 1})).as_ref(), 0.2).await;
    assert_eq!(fake.connection_count(), 2);
    let error = vendors::check(
        SpeechKind::Asr,
        "microsoft",
        serde_json::json!({"key": "k", "region": "eastus", "mode": "batch"}).as_object().cloned().unwrap(),
    )
    .unwrap()
    .unwrap_err();
    assert_eq!(error.field, "mode");
}

// ---- Tencent ----

#[tokio::test]
async fn tencent_signs_its_url_and_streams_an_utterance() {
    let fake = tencent::start(tencent::Mode::Normal, deepgram::counting()).await;
    let params = |secret: &str, fake: &fakes::Fake| {
        serde_json::json!({"appid": tencent::APPID, "secret_id": tencent::SECRET_ID, "secret_key": secret,
                           "url": format!("ws://{}/asr/v2", fake.addr), "max_retries": 0})
    };
    let asr = vendors::asr(&choice(SpeechKind::Asr, "tencent", params(tencent::SECRET_KEY, &fake))).unwrap();
    let events: Vec<AsrEvent> = utterance(asr.as_ref(), 1.0).await.into_iter().map(|e| e.expect("no error")).collect();
    assert!(
        events.iter().any(|e| matches!(e, AsrEvent::Partial { text, .. } if text == "heard 8000 samples")),
        "{events:?}"
    );
    assert_eq!(events.last(), Some(&AsrEvent::Final { turn: TurnId(7), text: "heard 16000 samples".into() }));
    let shake = &fake.handshakes()[0];
    assert_eq!(shake.query("engine_model_type"), Some("16k_zh"), "German has no engine: the default");
    assert_eq!(shake.query("voice_format"), Some("1"));
    assert!(shake.query("secret_key").is_none() && !format!("{:?}", shake.query).contains(tencent::SECRET_KEY));

    let asr = vendors::asr(&choice(SpeechKind::Asr, "tencent", params("wrong-key", &fake))).unwrap();
    let events = utterance(asr.as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::Auth(m))] if m.contains("4002")), "{events:?}");
    let fake = tencent::start(tencent::Mode::Garbage, deepgram::counting()).await;
    let asr = vendors::asr(&choice(SpeechKind::Asr, "tencent", params(tencent::SECRET_KEY, &fake))).unwrap();
    let events = utterance(asr.as_ref(), 1.0).await;
    assert!(matches!(events.last(), Some(Err(ProviderError::BadResponse(_)))), "{events:?}");
    let fake = tencent::start(tencent::Mode::Busy, deepgram::counting()).await;
    let asr = vendors::asr(&choice(SpeechKind::Asr, "tencent", params(tencent::SECRET_KEY, &fake))).unwrap();
    let events = utterance(asr.as_ref(), 0.2).await;
    assert!(matches!(&events[..], [Err(ProviderError::RateLimited { .. })]), "{events:?}");
    for (mode, expect) in
        [(tencent::Mode::SlowStart(Duration::from_secs(3)), "timeout"), (tencent::Mode::CutMidStream, "cut")]
    {
        let fake = tencent::start(mode, deepgram::counting()).await;
        let mut params = params(tencent::SECRET_KEY, &fake);
        params["timeout_ms"] = 300.into();
        let events = utterance(vendors::asr(&choice(SpeechKind::Asr, "tencent", params)).unwrap().as_ref(), 1.0).await;
        assert_eq!(last_kind(&events), expect, "{mode:?}: {events:?}");
    }
}
