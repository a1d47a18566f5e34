//! The remote providers against a local server that speaks the OpenAI wire format exactly: SSE
//! chunks and `[DONE]`, error bodies and status codes, a stream cut in the middle, a slow first
//! byte, retries before the first byte, and cancellation mid-stream.
//!
//! The scenario of each request is chosen by its `model` field.

#[path = "fakes/openai.rs"]
mod openai;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Multipart, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use colloquy_model::{KeyHeader, LlmParams, PromptRole, RemoteEndpoint, Secret};
use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
use colloquy_providers::llm::{ChatMessage, LlmEvent, LlmProvider, LlmRequest, ToolUse};
use colloquy_providers::remote::{RemoteAsr, RemoteLlm, RemoteTts};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::{ProviderError, TurnId};
use futures_util::StreamExt;
use serde_json::{Value, json};

/// What the fake saw of a transcription request: model, language, WAV sample count and rate.
type SeenTranscription = (String, String, usize, u32);

#[derive(Clone, Default)]
struct Fake {
    /// Requests seen, per scenario.
    hits: Arc<Mutex<std::collections::HashMap<String, usize>>>,
    /// Set when a streaming answer noticed its client went away.
    abandoned: Arc<AtomicUsize>,
    /// The last transcription request: (model, language, WAV sample count, rate).
    transcription: Arc<Mutex<Option<SeenTranscription>>>,
    /// The last chat request body.
    last_chat: Arc<Mutex<Option<Value>>>,
}

impl Fake {
    fn hit(&self, scenario: &str) -> usize {
        let mut hits = self.hits.lock().unwrap();
        let n = hits.entry(scenario.to_owned()).or_default();
        *n += 1;
        *n
    }
}

fn sse(data: &str) -> Bytes {
    Bytes::from(format!("data: {data}\n\n"))
}

fn delta(text: &str) -> Bytes {
    sse(&json!({"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]}).to_string())
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, axum::Json(json!({"error": {"message": message, "type": "invalid_request_error", "code": null}})))
        .into_response()
}

fn streaming(chunks: Vec<(Duration, Bytes)>, abandoned: Arc<AtomicUsize>) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
    tokio::spawn(async move {
        for (delay, chunk) in chunks {
            tokio::time::sleep(delay).await;
            if tx.send(Ok(chunk)).await.is_err() {
                abandoned.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    });
    let body =
        Body::from_stream(futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|c| (c, rx)) }));
    Response::builder().header("content-type", "text/event-stream").body(body).unwrap()
}

async fn chat(State(fake): State<Fake>, headers: HeaderMap, body: axum::Json<Value>) -> Response {
    *fake.last_chat.lock().unwrap() = Some(body.0.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Bearer sk-test") {
        return error(StatusCode::UNAUTHORIZED, "Incorrect API key provided");
    }
    let scenario = body["model"].as_str().unwrap_or_default().to_owned();
    let n = fake.hit(&scenario);
    let now = Duration::ZERO;
    let ms = Duration::from_millis;
    match scenario.as_str() {
        "ok" => streaming(
            vec![
                (now, Bytes::from(": keep-alive\n\n")),
                (now, delta("The capital")),
                (ms(10), delta(" of France")),
                (ms(10), delta(" is Paris.")),
                (now, sse(&json!({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 7, "total_tokens": 19}}).to_string())),
                (now, sse("[DONE]")),
            ],
            fake.abandoned.clone(),
        ),
        "split" => {
            // One event split across chunks at awkward places, with CRLF separators.
            let all = format!("data: {}\r\n\r\ndata: [DONE]\r\n\r\n", json!({"choices": [{"delta": {"content": "héllo"}}]}));
            let bytes = all.into_bytes();
            let chunks = bytes.chunks(7).map(|c| (ms(1), Bytes::copy_from_slice(c))).collect();
            streaming(chunks, fake.abandoned.clone())
        }
        "cut" => streaming(vec![(now, delta("Once upon")), (ms(10), delta(" a time"))], fake.abandoned.clone()),
        "slow" => {
            tokio::time::sleep(ms(1500)).await;
            streaming(vec![(now, delta("late")), (now, sse("[DONE]"))], fake.abandoned.clone())
        }
        "flaky" if n <= 2 => {
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached");
            response.headers_mut().insert("retry-after", "0.05".parse().unwrap());
            response
        }
        "flaky" => streaming(vec![(now, delta("third time lucky")), (now, sse("[DONE]"))], fake.abandoned.clone()),
        "tools" => {
            // Two parallel calls, their arguments split in pieces of 5 characters.
            let calls = [("call_w", "get_weather", r#"{"city": "Paris", "unit": "celsius"}"#), ("call_t", "get_time", "{}")];
            let events = openai::tool_call_events(&calls, 5);
            streaming(events.into_iter().map(|e| (ms(2), Bytes::from(e))).collect(), fake.abandoned.clone())
        }
        "tools_broken" => {
            let call = json!({"index": 0, "id": "call_x", "type": "function", "function": {"arguments": "{}"}});
            let chunk = json!({"choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": "tool_calls"}]});
            streaming(vec![(now, sse(&chunk.to_string())), (now, sse("[DONE]"))], fake.abandoned.clone())
        }
        "down" => error(StatusCode::BAD_GATEWAY, "upstream is down"),
        "bad" => error(StatusCode::BAD_REQUEST, "max_tokens is too large"),
        "garbage" => streaming(vec![(now, sse("{not json"))], fake.abandoned.clone()),
        "endless" => {
            let chunks = (0..2000).map(|i| (ms(5), delta(&format!("word{i} ")))).collect();
            streaming(chunks, fake.abandoned.clone())
        }
        other => error(StatusCode::NOT_FOUND, &format!("The model `{other}` does not exist")),
    }
}

/// Azure OpenAI's form: the deployment in the path, `api-version` in the query, the key in
/// `api-key` (learn.microsoft.com, "Azure OpenAI in Azure AI Foundry Models REST API reference").
async fn azure_chat(
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> Response {
    if query.as_deref() != Some("api-version=2024-10-21") {
        return error(StatusCode::NOT_FOUND, "Resource not found");
    }
    if headers.get("api-key").and_then(|v| v.to_str().ok()) != Some("sk-test") || headers.contains_key("authorization")
    {
        return error(StatusCode::UNAUTHORIZED, "Access denied due to invalid subscription key");
    }
    let _ = body;
    streaming(vec![(Duration::ZERO, delta("from Azure")), (Duration::ZERO, sse("[DONE]"))], Arc::default())
}

async fn transcriptions(State(fake): State<Fake>, mut form: Multipart) -> Response {
    let (mut model, mut language, mut wav) = (String::new(), String::new(), Vec::new());
    while let Some(field) = form.next_field().await.unwrap() {
        match field.name().unwrap_or_default() {
            "model" => model = field.text().await.unwrap(),
            "language" => language = field.text().await.unwrap(),
            "file" => wav = field.bytes().await.unwrap().to_vec(),
            _ => {}
        }
    }
    let reader = hound::WavReader::new(std::io::Cursor::new(wav)).expect("a valid WAV");
    let spec = reader.spec();
    *fake.transcription.lock().unwrap() = Some((model.clone(), language, reader.len() as usize, spec.sample_rate));
    if model == "down" {
        return error(StatusCode::SERVICE_UNAVAILABLE, "overloaded");
    }
    axum::Json(json!({"text": "  Hello from the fake.  "})).into_response()
}

async fn speech(State(fake): State<Fake>, body: axum::Json<Value>) -> Response {
    let input = body["input"].as_str().unwrap_or_default().to_owned();
    if body["response_format"] != "pcm" {
        return error(StatusCode::BAD_REQUEST, "only pcm here");
    }
    // 0.5 s of a 300 Hz tone at 24 kHz, sent in odd-sized pieces with pauses; WAV when asked.
    let pcm: Vec<u8> = (0..12_000)
        .flat_map(|i| ((8000.0 * (i as f32 * 300.0 * std::f32::consts::TAU / 24_000.0).sin()) as i16).to_le_bytes())
        .collect();
    let bytes = if body["model"] == "wav" {
        let mut wav = std::io::Cursor::new(Vec::new());
        let mut writer = hound::WavWriter::new(
            &mut wav,
            hound::WavSpec {
                channels: 1,
                sample_rate: 16_000,
                bits_per_sample: 16,
                sample_format: hound::SampleFormat::Int,
            },
        )
        .unwrap();
        for s in pcm.chunks(2).take(8000) {
            writer.write_sample(i16::from_le_bytes([s[0], s[1]])).unwrap();
        }
        writer.finalize().unwrap();
        wav.into_inner()
    } else {
        pcm
    };
    let chunks = bytes.chunks(4801).map(|c| (Duration::from_millis(40), Bytes::copy_from_slice(c))).collect();
    let _ = input;
    streaming(chunks, fake.abandoned.clone())
}

async fn fake_server() -> (String, Fake) {
    let fake = Fake::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/openai/deployments/voice/chat/completions", post(azure_chat))
        .route("/v1/audio/transcriptions", post(transcriptions))
        .route("/v1/audio/speech", post(speech))
        .with_state(fake.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, fake)
}

fn endpoint(url: &str, model: &str, timeout_ms: u32, max_retries: u32) -> RemoteEndpoint {
    RemoteEndpoint {
        url: url.to_owned(),
        api_key: Some(Secret::new("sk-test")),
        model: model.to_owned(),
        headers: vec![("X-Team".into(), "voice".into())],
        timeout_ms,
        max_retries,
        key_header: KeyHeader::Bearer,
    }
}

fn question(turn: u64) -> LlmRequest {
    LlmRequest {
        turn: TurnId(turn),
        messages: vec![
            ChatMessage { role: PromptRole::System, content: "Be brief.".into() },
            ChatMessage { role: PromptRole::User, content: "What is the capital of France?".into() },
        ],
        params: LlmParams { temperature: 0.0, top_p: 1.0, max_tokens: 32 },
        tools: ToolUse::none(),
    }
}

async fn collect(llm: &RemoteLlm, turn: u64) -> Vec<Result<LlmEvent, ProviderError>> {
    llm.chat(question(turn)).collect().await
}

#[tokio::test]
async fn a_streamed_answer_arrives_as_deltas_then_usage_then_done() {
    let (url, fake) = fake_server().await;
    let llm = RemoteLlm::new(endpoint(&url, "ok", 2000, 0)).unwrap();
    let events = collect(&llm, 7).await;
    let turn = TurnId(7);
    assert_eq!(
        events,
        [
            Ok(LlmEvent::Delta { turn, text: "The capital".into() }),
            Ok(LlmEvent::Delta { turn, text: " of France".into() }),
            Ok(LlmEvent::Delta { turn, text: " is Paris.".into() }),
            Ok(LlmEvent::Usage { turn, prompt_tokens: 12, completion_tokens: 7 }),
            Ok(LlmEvent::Done { turn }),
        ]
    );
    let sent = fake.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["max_tokens"], 32);
    assert_eq!(sent["messages"][1], json!({"role": "user", "content": "What is the capital of France?"}));

    let split = RemoteLlm::new(endpoint(&url, "split", 2000, 0)).unwrap();
    assert_eq!(
        collect(&split, 1).await,
        [Ok(LlmEvent::Delta { turn: TurnId(1), text: "héllo".into() }), Ok(LlmEvent::Done { turn: TurnId(1) })]
    );
}

#[tokio::test]
async fn a_base_url_keeps_its_query_and_the_key_can_go_in_api_key() {
    let (url, _fake) = fake_server().await;
    let host = url.trim_end_matches("/v1");
    let mut azure = endpoint(&format!("{host}/openai/deployments/voice?api-version=2024-10-21"), "gpt-4o", 2000, 0);
    azure.key_header = KeyHeader::ApiKey;
    let events = collect(&RemoteLlm::new(azure.clone()).unwrap(), 3).await;
    assert_eq!(
        events,
        [Ok(LlmEvent::Delta { turn: TurnId(3), text: "from Azure".into() }), Ok(LlmEvent::Done { turn: TurnId(3) })]
    );
    // The same endpoint with a Bearer key is refused by Azure's rules.
    azure.key_header = KeyHeader::Bearer;
    assert!(collect(&RemoteLlm::new(azure).unwrap(), 4).await[0].is_err());
}

#[tokio::test]
async fn failures_become_typed_errors() {
    let (url, _fake) = fake_server().await;
    let last = |events: Vec<Result<LlmEvent, ProviderError>>| events.into_iter().last().unwrap();

    let mut wrong_key = endpoint(&url, "ok", 2000, 3);
    wrong_key.api_key = Some(Secret::new("sk-wrong"));
    let error = last(collect(&RemoteLlm::new(wrong_key).unwrap(), 1).await).unwrap_err();
    assert!(matches!(&error, ProviderError::Auth(m) if m.contains("Incorrect API key")), "{error:?}");

    let error = last(collect(&RemoteLlm::new(endpoint(&url, "bad", 2000, 3)).unwrap(), 1).await).unwrap_err();
    assert!(
        matches!(&error, ProviderError::BadResponse(m) if m.contains("400") && m.contains("max_tokens is too large")),
        "{error:?}"
    );

    let error = last(collect(&RemoteLlm::new(endpoint(&url, "down", 2000, 1)).unwrap(), 1).await).unwrap_err();
    assert!(matches!(&error, ProviderError::Unavailable(m) if m.contains("502")), "{error:?}");

    let error = last(collect(&RemoteLlm::new(endpoint(&url, "garbage", 2000, 0)).unwrap(), 1).await).unwrap_err();
    assert!(matches!(error, ProviderError::BadResponse(_)), "{error:?}");

    let nobody = RemoteLlm::new(endpoint("http://127.0.0.1:9/v1", "ok", 500, 1)).unwrap();
    let error = last(collect(&nobody, 1).await).unwrap_err();
    assert!(matches!(error, ProviderError::Unavailable(_)), "{error:?}");
}

#[tokio::test]
async fn a_stream_cut_in_the_middle_keeps_what_came_and_says_so() {
    let (url, _fake) = fake_server().await;
    let llm = RemoteLlm::new(endpoint(&url, "cut", 2000, 3)).unwrap();
    let events = collect(&llm, 3).await;
    assert_eq!(events[0], Ok(LlmEvent::Delta { turn: TurnId(3), text: "Once upon".into() }));
    assert_eq!(events[1], Ok(LlmEvent::Delta { turn: TurnId(3), text: " a time".into() }));
    assert!(matches!(&events[2], Err(ProviderError::CutStream(m)) if m.contains("after 2 deltas")), "{:?}", events[2]);
    assert_eq!(events.len(), 3);
}

#[tokio::test]
async fn a_slow_first_byte_times_out_and_is_retried_only_before_it() {
    let (url, fake) = fake_server().await;
    let started = Instant::now();
    let llm = RemoteLlm::new(endpoint(&url, "slow", 300, 1)).unwrap();
    let events = collect(&llm, 1).await;
    assert_eq!(events, [Err(ProviderError::Timeout(Duration::from_millis(300)))]);
    // Two attempts of 300 ms and a backoff, not the 1.5 s the server takes.
    assert!(started.elapsed() < Duration::from_millis(1400), "{:?}", started.elapsed());
    assert_eq!(fake.hits.lock().unwrap()["slow"], 2);

    // 429 twice, then an answer: retried, with the server's Retry-After.
    let llm = RemoteLlm::new(endpoint(&url, "flaky", 2000, 2)).unwrap();
    let events = collect(&llm, 2).await;
    assert_eq!(events.last(), Some(&Ok(LlmEvent::Done { turn: TurnId(2) })));
    assert_eq!(fake.hits.lock().unwrap()["flaky"], 3);
    // With fewer retries than failures, the rate limit is the answer.
    let fresh = fake_server().await;
    let llm = RemoteLlm::new(endpoint(&fresh.0, "flaky", 2000, 1)).unwrap();
    assert!(matches!(collect(&llm, 2).await.last(), Some(Err(ProviderError::RateLimited { .. }))));
}

#[tokio::test]
async fn dropping_the_stream_cancels_the_request_at_once() {
    let (url, fake) = fake_server().await;
    let llm = RemoteLlm::new(endpoint(&url, "endless", 2000, 0)).unwrap();
    let mut stream = llm.chat(question(9));
    for _ in 0..5 {
        assert!(matches!(stream.next().await, Some(Ok(LlmEvent::Delta { .. }))));
    }
    drop(stream);
    for _ in 0..100 {
        if fake.abandoned.load(Ordering::SeqCst) > 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the server kept streaming to a client that had gone");
}

#[tokio::test]
async fn transcription_posts_the_utterance_as_a_wav_and_returns_the_text() {
    let (url, fake) = fake_server().await;
    let asr = RemoteAsr::new(endpoint(&url, "whisper-1", 2000, 0)).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    let mut stream = asr.transcribe(AsrRequest { turn: TurnId(4), language: "en-US".into(), audio: rx });
    for _ in 0..3 {
        tx.send(vec![0.1; 1600]).await.unwrap();
    }
    drop(tx);
    assert_eq!(stream.next().await, Some(Ok(AsrEvent::Final { turn: TurnId(4), text: "Hello from the fake.".into() })));
    assert_eq!(stream.next().await, None);
    assert_eq!(fake.transcription.lock().unwrap().clone(), Some(("whisper-1".into(), "en".into(), 4800, 16_000)));

    let down = RemoteAsr::new(endpoint(&url, "down", 2000, 0)).unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    drop(tx);
    let result = down.transcribe(AsrRequest { turn: TurnId(5), language: "en".into(), audio: rx }).next().await;
    assert!(matches!(result, Some(Err(ProviderError::Unavailable(_)))), "{result:?}");
}

#[tokio::test]
async fn speech_streams_pcm_as_it_arrives() {
    let (url, _fake) = fake_server().await;
    let tts = RemoteTts::new(endpoint(&url, "tts-1", 2000, 0)).unwrap();
    let started = Instant::now();
    let mut stream =
        tts.synthesize(TtsRequest { turn: TurnId(6), text: "Hello.".into(), voice: "alloy".into(), speed: 1.0 });
    let first = stream.next().await.unwrap().unwrap();
    let first_after = started.elapsed();
    assert_eq!((first.turn, first.sample_rate), (TurnId(6), 24_000));
    let mut samples = first.pcm.len();
    while let Some(chunk) = stream.next().await {
        samples += chunk.unwrap().pcm.len();
    }
    let all_after = started.elapsed();
    // Every sample arrived, across odd-sized pieces, and the first before the last was sent.
    assert_eq!(samples, 12_000);
    assert!(first_after * 3 < all_after, "first audio after {first_after:?}, all after {all_after:?}");

    let wav = RemoteTts::new(endpoint(&url, "wav", 2000, 0)).unwrap();
    let chunks: Vec<_> = wav
        .synthesize(TtsRequest { turn: TurnId(7), text: "Hi.".into(), voice: "alloy".into(), speed: 1.0 })
        .collect()
        .await;
    let chunks: Vec<_> = chunks.into_iter().map(Result::unwrap).collect();
    assert!(chunks.iter().all(|c| c.sample_rate == 16_000));
    assert_eq!(chunks.iter().map(|c| c.pcm.len()).sum::<usize>(), 8000);
}

#[tokio::test]
async fn tools_are_offered_and_streamed_parallel_calls_come_out_whole() {
    use colloquy_model::{ToolCall, ToolChoice, ToolFunction, ToolOutcome, ToolRound};
    let (url, fake) = fake_server().await;
    let llm = RemoteLlm::new(endpoint(&url, "tools", 2000, 0)).unwrap();
    let weather = ToolFunction {
        name: "get_weather".into(),
        description: "The weather in a city.".into(),
        parameters: r#"{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}"#.into(),
    };
    let earlier = ToolCall { id: "call_0".into(), name: "get_weather".into(), arguments: r#"{"city":"Oslo"}"#.into() };
    let mut request = question(5);
    request.tools = ToolUse {
        functions: vec![weather],
        rounds: vec![ToolRound {
            text: "Let me see.".into(),
            calls: vec![(earlier, ToolOutcome::Failed("no answer within 5000 ms".into()))],
        }],
        choice: ToolChoice::Auto,
    };
    let events: Vec<_> = llm.chat(request).collect().await;
    let turn = TurnId(5);
    assert_eq!(
        events,
        [
            Ok(LlmEvent::ToolCall {
                turn,
                call: ToolCall {
                    id: "call_w".into(),
                    name: "get_weather".into(),
                    arguments: r#"{"city": "Paris", "unit": "celsius"}"#.into()
                }
            }),
            Ok(LlmEvent::ToolCall {
                turn,
                call: ToolCall { id: "call_t".into(), name: "get_time".into(), arguments: "{}".into() }
            }),
            Ok(LlmEvent::Usage { turn, prompt_tokens: 42, completion_tokens: 9 }),
            Ok(LlmEvent::Done { turn }),
        ]
    );
    // The request offered the tool with its schema, and carried the earlier round as OpenAI's
    // messages: the assistant's calls, then a `tool` message per result.
    let sent = fake.last_chat.lock().unwrap().clone().unwrap();
    assert_eq!(sent["tool_choice"], "auto");
    assert_eq!(sent["tools"][0]["type"], "function");
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["function"]["parameters"]["required"], json!(["city"]));
    let messages = sent["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    assert_eq!(
        messages[2],
        json!({"role": "assistant", "content": "Let me see.", "tool_calls": [
            {"id": "call_0", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Oslo\"}"}}
        ]})
    );
    assert_eq!(
        messages[3],
        json!({"role": "tool", "tool_call_id": "call_0", "content": "{\"error\":\"no answer within 5000 ms\"}"})
    );

    // Without tools, none are offered.
    let _ = collect(&RemoteLlm::new(endpoint(&url, "ok", 2000, 0)).unwrap(), 1).await;
    let sent = fake.last_chat.lock().unwrap().clone().unwrap();
    assert!(sent.get("tools").is_none() && sent.get("tool_choice").is_none(), "{sent}");

    // A call without a function name is a broken answer.
    let broken = collect(&RemoteLlm::new(endpoint(&url, "tools_broken", 2000, 0)).unwrap(), 2).await;
    assert!(
        matches!(broken.last(), Some(Err(ProviderError::BadResponse(m))) if m.contains("no function name")),
        "{broken:?}"
    );
}
