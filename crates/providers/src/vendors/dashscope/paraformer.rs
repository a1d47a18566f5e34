//! Paraformer real-time speech recognition on DashScope (the recognizer ZEGO's docs name):
//! `run-task` with `task: "asr"`, `function: "recognition"`, `parameters.format: "pcm"` and
//! `sample_rate: 16000`; audio as binary frames after `task-started`; `result-generated` events
//! carry `payload.output.sentence` (`text`, `sentence_end`, `heartbeat`); `finish-task`, then
//! `task-finished`. One task per utterance.

use std::sync::Arc;

use colloquy_model::VendorParamError;
use serde::Deserialize;
use tokio_tungstenite::tungstenite::Message;

use super::{Endpoint, Frame, Task};
use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::vendors::{AsrVendor, VendorParams};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_MODEL: &str = "paraformer-realtime-v2";

pub(in crate::vendors) const ASR: AsrVendor = AsrVendor {
    name: "paraformer",
    about: "Alibaba Cloud Model Studio (DashScope) Paraformer real-time recognition (WebSocket)",
    url_param: "url",
    check: crate::vendors::check_params::<ParaformerParams>,
    secrets: ParaformerParams::SECRETS,
    build: |choice| Ok(Arc::new(ParaformerAsr { params: crate::vendors::params_of(choice)? }) as Arc<dyn AsrProvider>),
};

/// Paraformer's parameters, in DashScope's names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParaformerParams {
    /// The Model Studio API key, sent as `Authorization: Bearer …`. Secret.
    pub api_key: String,
    /// Default `wss://dashscope.aliyuncs.com/api-ws/v1/inference` (a workspace domain also works).
    pub url: Option<String>,
    /// Sent as `X-DashScope-WorkSpace`.
    pub workspace: Option<String>,
    /// Default `paraformer-realtime-v2`.
    pub model: Option<String>,
    /// Default: the primary subtag of the agent's `asr.language` (`zh`, `en`, …).
    pub language_hints: Option<Vec<String>>,
    pub vocabulary_id: Option<String>,
    pub disfluency_removal_enabled: Option<bool>,
    pub punctuation_prediction_enabled: Option<bool>,
    pub inverse_text_normalization_enabled: Option<bool>,
    /// 200–6000 ms of silence that ends a sentence.
    pub max_sentence_silence: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for ParaformerParams {
    const SECRETS: &'static [&'static str] = &["api_key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        self.endpoint().validate()?;
        crate::vendors::in_range("max_sentence_silence", self.max_sentence_silence, 200..=6000)
    }
}

impl ParaformerParams {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            api_key: self.api_key.clone(),
            url: self.url.clone(),
            workspace: self.workspace.clone(),
            timeout_ms: self.timeout_ms,
            max_retries: self.max_retries,
        }
    }

    fn run_task(&self, language: &str) -> serde_json::Value {
        let primary = language.split('-').next().unwrap_or("zh").to_ascii_lowercase();
        let mut parameters = serde_json::json!({
            "format": "pcm",
            "sample_rate": ASR_SAMPLE_RATE,
            "language_hints": self.language_hints.clone().unwrap_or_else(|| vec![primary]),
        });
        let optional = [
            ("vocabulary_id", self.vocabulary_id.clone().map(serde_json::Value::from)),
            ("disfluency_removal_enabled", self.disfluency_removal_enabled.map(serde_json::Value::from)),
            ("punctuation_prediction_enabled", self.punctuation_prediction_enabled.map(serde_json::Value::from)),
            (
                "inverse_text_normalization_enabled",
                self.inverse_text_normalization_enabled.map(serde_json::Value::from),
            ),
            ("max_sentence_silence", self.max_sentence_silence.map(serde_json::Value::from)),
        ];
        for (name, value) in optional {
            if let Some(value) = value {
                parameters[name] = value;
            }
        }
        serde_json::json!({
            "task_group": "audio",
            "task": "asr",
            "function": "recognition",
            "model": self.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            "parameters": parameters,
            "input": {},
        })
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct ParaformerAsr {
    params: ParaformerParams,
}

impl AsrProvider for ParaformerAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let target = self.params.endpoint().target();
        let run_task = self.params.run_task(&request.language);
        crate::vendors::spawn_recognition(request.turn, move |events| async move {
            recognise(&target, run_task, request, events).await
        })
    }
}

async fn recognise(
    target: &crate::vendors::ws::Target,
    run_task: serde_json::Value,
    mut request: AsrRequest,
    events: crate::vendors::Partials,
) -> Result<String, ProviderError> {
    let mut task = Task::start(target, run_task).await?;
    let mut finals: Vec<String> = Vec::new();
    let mut audio_open = true;
    loop {
        tokio::select! {
            chunk = request.audio.recv(), if audio_open => match chunk {
                Some(samples) => {
                    let pcm = crate::vendors::le_pcm16(&samples);
                    super::send(&mut task.socket, Message::binary(pcm)).await?;
                }
                None => {
                    audio_open = false;
                    task.finish().await?;
                }
            },
            frame = task.next() => match frame? {
                None if audio_open => {
                    return Err(ProviderError::CutStream("DashScope closed before the utterance ended".into()));
                }
                None => return Ok(finals.join(" ")),
                Some(Frame::Audio(_)) => return Err(ProviderError::BadResponse("Paraformer sent a binary frame".into())),
                Some(Frame::Event(event)) => match event.header.event.as_str() {
                    "result-generated" => {
                        let Some(partial) = sentence(&event.payload, &mut finals) else { continue };
                        let partial = AsrEvent::Partial { turn: request.turn, text: partial };
                        if events.send(Ok(partial)).await.is_err() {
                            return Err(ProviderError::CutStream("cancelled".into()));
                        }
                    }
                    "task-finished" => return Ok(finals.join(" ")),
                    "task-failed" => return Err(event.failure()),
                    _ => {}
                },
            },
        }
    }
}

/// A `result-generated` payload: adds an ended sentence to `finals`; answers what has been said so
/// far, when it changed.
fn sentence(payload: &serde_json::Value, finals: &mut Vec<String>) -> Option<String> {
    let sentence = &payload["output"]["sentence"];
    if sentence["heartbeat"].as_bool() == Some(true) {
        return None;
    }
    let text = sentence["text"].as_str().unwrap_or_default().trim().to_owned();
    if text.is_empty() {
        return None;
    }
    if sentence["sentence_end"].as_bool() == Some(true) {
        finals.push(text);
        return Some(finals.join(" "));
    }
    Some(finals.iter().cloned().chain([text]).collect::<Vec<_>>().join(" "))
}
