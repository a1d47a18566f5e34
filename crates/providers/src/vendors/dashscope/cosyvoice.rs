//! CosyVoice speech synthesis on DashScope (Alibaba's voices, `longxiaochun_v2`, …): `run-task`
//! with `task: "tts"`, `function: "SpeechSynthesizer"`, `parameters.text_type: "PlainText"`,
//! `voice`, `format: "pcm"`, `sample_rate`; the text in `continue-task`; `finish-task`; the audio
//! as binary frames until `task-finished`. One task per clause.

use std::sync::Arc;

use colloquy_model::VendorParamError;
use serde::Deserialize;
use tokio::sync::mpsc;

use super::{Endpoint, Frame, Task};
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::vendors::{TtsVendor, VendorParams};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_MODEL: &str = "cosyvoice-v2";
pub const DEFAULT_SAMPLE_RATE: u32 = 22_050;
/// The PCM rates CosyVoice synthesises.
pub const SAMPLE_RATES: [u32; 6] = [8_000, 16_000, 22_050, 24_000, 44_100, 48_000];

pub(in crate::vendors) const TTS: TtsVendor = TtsVendor {
    name: "cosyvoice",
    about: "Alibaba Cloud Model Studio (DashScope) CosyVoice synthesis (WebSocket)",
    url_param: "url",
    voice_param: "voice",
    check: crate::vendors::check_params::<CosyVoiceParams>,
    secrets: CosyVoiceParams::SECRETS,
    build: |choice| Ok(Arc::new(CosyVoiceTts { params: crate::vendors::params_of(choice)? }) as Arc<dyn TtsProvider>),
};

/// CosyVoice's parameters, in DashScope's names.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CosyVoiceParams {
    /// The Model Studio API key, sent as `Authorization: Bearer …`. Secret.
    pub api_key: String,
    /// The voice (`longxiaochun_v2`); becomes the agent's `tts.voice`.
    pub voice: String,
    pub url: Option<String>,
    /// Sent as `X-DashScope-WorkSpace`.
    pub workspace: Option<String>,
    /// Default `cosyvoice-v2`.
    pub model: Option<String>,
    /// 8000, 16000, 22050 (default), 24000, 44100 or 48000.
    pub sample_rate: Option<u32>,
    /// 0–100.
    pub volume: Option<u32>,
    /// 0.5–2. Default: the agent's `tts.speed`.
    pub rate: Option<f32>,
    /// 0.5–2.
    pub pitch: Option<f32>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for CosyVoiceParams {
    const SECRETS: &'static [&'static str] = &["api_key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        self.endpoint().validate()?;
        if let Some(rate) = self.sample_rate
            && !SAMPLE_RATES.contains(&rate)
        {
            return Err(VendorParamError {
                field: "sample_rate".into(),
                message: format!("sample_rate must be one of {SAMPLE_RATES:?}, not {rate}"),
            });
        }
        if self.voice.is_empty() || self.voice.len() > 128 {
            return Err(VendorParamError {
                field: "voice".into(),
                message: "voice must be 1 to 128 characters".into(),
            });
        }
        crate::vendors::in_range("volume", self.volume, 0..=100)?;
        crate::vendors::in_range("rate", self.rate, 0.5..=2.0)?;
        crate::vendors::in_range("pitch", self.pitch, 0.5..=2.0)
    }
}

impl CosyVoiceParams {
    fn endpoint(&self) -> Endpoint {
        Endpoint {
            api_key: self.api_key.clone(),
            url: self.url.clone(),
            workspace: self.workspace.clone(),
            timeout_ms: self.timeout_ms,
            max_retries: self.max_retries,
        }
    }

    fn sample_rate(&self) -> u32 {
        self.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    fn run_task(&self, voice: &str, speed: f32) -> serde_json::Value {
        let mut parameters = serde_json::json!({
            "text_type": "PlainText",
            "voice": voice,
            "format": "pcm",
            "sample_rate": self.sample_rate(),
            "rate": self.rate.unwrap_or(speed.clamp(0.5, 2.0)),
        });
        if let Some(volume) = self.volume {
            parameters["volume"] = volume.into();
        }
        if let Some(pitch) = self.pitch {
            parameters["pitch"] = pitch.into();
        }
        serde_json::json!({
            "task_group": "audio",
            "task": "tts",
            "function": "SpeechSynthesizer",
            "model": self.model.clone().unwrap_or_else(|| DEFAULT_MODEL.to_owned()),
            "parameters": parameters,
            "input": {},
        })
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct CosyVoiceTts {
    params: CosyVoiceParams,
}

impl TtsProvider for CosyVoiceTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.params.voice.clone() } else { request.voice.clone() };
        let target = self.params.endpoint().target();
        let run_task = self.params.run_task(&voice, request.speed);
        let rate = self.params.sample_rate();
        crate::vendors::spawn_synthesis(
            move |chunks| async move { speak(&target, run_task, request, rate, &chunks).await },
        )
    }
}

async fn speak(
    target: &crate::vendors::ws::Target,
    run_task: serde_json::Value,
    request: TtsRequest,
    rate: u32,
    chunks: &mpsc::Sender<Result<TtsChunk, ProviderError>>,
) -> Result<(), ProviderError> {
    let mut task = Task::start(target, run_task).await?;
    task.continue_with(serde_json::json!({"text": request.text})).await?;
    task.finish().await?;
    let mut audio = crate::vendors::ClauseAudio::new(chunks, request.turn, rate);
    loop {
        match task.next().await {
            Err(ProviderError::Timeout(t)) => return Err(audio.silent_for(t)),
            Err(error) => return Err(error),
            Ok(None) if audio.started() => return Ok(()),
            Ok(None) => return Err(ProviderError::CutStream("DashScope ended the task without audio".into())),
            Ok(Some(Frame::Audio(bytes))) => {
                if !audio.push(&bytes).await {
                    return Ok(());
                }
            }
            Ok(Some(Frame::Event(event))) => match event.header.event.as_str() {
                "task-finished" if audio.started() => return Ok(()),
                "task-finished" => return Err(ProviderError::CutStream("CosyVoice finished without audio".into())),
                "task-failed" => return Err(event.failure()),
                _ => {}
            },
        }
    }
}
