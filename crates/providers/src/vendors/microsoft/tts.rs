//! Microsoft Azure AI Speech text to speech over its REST API, with SSML.
//!
//! From Azure's "Text to speech REST API" reference: `POST
//! https://{region}.tts.speech.microsoft.com/cognitiveservices/v1` with `Ocp-Apim-Subscription-Key`,
//! `Content-Type: application/ssml+xml`, `X-Microsoft-OutputFormat: raw-24khz-16bit-mono-pcm` (raw
//! 16-bit mono PCM at 8, 16, 24 or 48 kHz) and an SSML body: `<speak>` with `<voice name>`, the
//! speaking style as `<mstts:express-as style styledegree role>`, rate and volume as `<prosody>`.
//! The audio streams back in the answer's body; refusals are 400 (bad SSML), 401 (bad key), 429.
//!
//! One request per clause.

use std::sync::Arc;
use std::time::Duration;

use colloquy_model::VendorParamError;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::vendors::{TtsVendor, VendorParams};
use crate::{ProviderError, ProviderStream};

pub const DEFAULT_SAMPLE_RATE: u32 = 24_000;
/// The raw PCM rates Azure streams.
pub const SAMPLE_RATES: [u32; 4] = [8_000, 16_000, 24_000, 48_000];

pub(in crate::vendors) const TTS: TtsVendor = TtsVendor {
    name: "microsoft",
    about: "Microsoft Azure AI Speech TTS (REST, SSML voice and style)",
    url_param: "base_url",
    voice_param: "voice_name",
    check: crate::vendors::check_params::<MicrosoftParams>,
    secrets: MicrosoftParams::SECRETS,
    build: |choice| Ok(Arc::new(MicrosoftTts::new(crate::vendors::params_of(choice)?)?) as Arc<dyn TtsProvider>),
};

/// Azure's parameters, in Agora's names for them (`tts.params` for vendor `microsoft`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrosoftParams {
    /// The Speech resource key, sent as `Ocp-Apim-Subscription-Key`. Secret.
    pub key: String,
    /// The resource's region (`eastus`): the endpoint is `https://{region}.tts.speech.microsoft.com`.
    pub region: String,
    /// The voice (`en-US-AndrewMultilingualNeural`); becomes the agent's `tts.voice`.
    pub voice_name: String,
    /// 0.5–2. Default: the agent's `tts.speed`.
    pub speed: Option<f32>,
    /// 0–100. Default 100.
    pub volume: Option<f32>,
    /// 8000, 16000, 24000 (default) or 48000.
    pub sample_rate: Option<u32>,
    /// A speaking style of the voice (`cheerful`, `customerservice`, …).
    pub style: Option<String>,
    /// 0.01–2: how strongly the style is expressed.
    pub style_degree: Option<f32>,
    /// A role the voice plays (`YoungAdultFemale`, …).
    pub role: Option<String>,
    /// The SSML language; default the voice name's locale (`en-US`).
    pub language: Option<String>,
    /// Replaces `https://{region}.tts.speech.microsoft.com` (a private endpoint, a test).
    pub base_url: Option<String>,
    pub timeout_ms: Option<u32>,
    pub max_retries: Option<u32>,
}

impl VendorParams for MicrosoftParams {
    const SECRETS: &'static [&'static str] = &["key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        let invalid = |field: &str, message: String| Err(VendorParamError { field: field.into(), message });
        if self.region.is_empty() || !self.region.chars().all(|c| c.is_ascii_alphanumeric()) {
            return invalid("region", "region must be an Azure region name such as \"eastus\"".into());
        }
        if self.voice_name.is_empty() || self.voice_name.len() > 128 || self.voice_name.contains(['<', '>', '"', '&']) {
            return invalid(
                "voice_name",
                "voice_name must be a voice name such as \"en-US-AndrewMultilingualNeural\"".into(),
            );
        }
        if let Some(rate) = self.sample_rate
            && !SAMPLE_RATES.contains(&rate)
        {
            return invalid("sample_rate", format!("sample_rate must be one of {SAMPLE_RATES:?}, not {rate}"));
        }
        for (field, value) in [("style", &self.style), ("role", &self.role), ("language", &self.language)] {
            if let Some(value) = value
                && (value.is_empty()
                    || value.len() > 64
                    || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
            {
                return invalid(field, format!("{field} must be a name of letters, digits and dashes"));
            }
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid("base_url", "base_url must be an http:// or https:// URL".into());
        }
        crate::vendors::in_range("speed", self.speed, 0.5..=2.0)?;
        crate::vendors::in_range("volume", self.volume, 0.0..=100.0)?;
        crate::vendors::in_range("style_degree", self.style_degree, 0.01..=2.0)?;
        crate::vendors::check_limits(self.timeout_ms, self.max_retries)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct MicrosoftTts {
    params: MicrosoftParams,
    http: reqwest::Client,
}

impl MicrosoftTts {
    pub fn new(params: MicrosoftParams) -> Result<MicrosoftTts, String> {
        let timeout = crate::vendors::timeout(params.timeout_ms);
        let http =
            reqwest::Client::builder().connect_timeout(timeout).build().map_err(|e| format!("no HTTP client: {e}"))?;
        Ok(MicrosoftTts { params, http })
    }

    fn timeout(&self) -> Duration {
        crate::vendors::timeout(self.params.timeout_ms)
    }

    fn url(&self) -> String {
        let base = match &self.params.base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("https://{}.tts.speech.microsoft.com", self.params.region),
        };
        format!("{base}/cognitiveservices/v1")
    }

    fn sample_rate(&self) -> u32 {
        self.params.sample_rate.unwrap_or(DEFAULT_SAMPLE_RATE)
    }

    /// The SSML for one clause.
    pub fn ssml(&self, text: &str, voice: &str, speed: f32) -> String {
        let p = &self.params;
        let language = p.language.clone().unwrap_or_else(|| voice.splitn(3, '-').take(2).collect::<Vec<_>>().join("-"));
        let speed = p.speed.unwrap_or(speed.clamp(0.5, 2.0));
        let rate = format!("{:+.0}%", (speed - 1.0) * 100.0);
        let volume = p.volume.unwrap_or(100.0);
        let mut inner = format!("<prosody rate=\"{rate}\" volume=\"{volume}\">{}</prosody>", escape(text));
        if p.style.is_some() || p.role.is_some() {
            let mut attributes = String::new();
            if let Some(style) = &p.style {
                attributes.push_str(&format!(" style=\"{style}\""));
            }
            if let Some(degree) = p.style_degree {
                attributes.push_str(&format!(" styledegree=\"{degree}\""));
            }
            if let Some(role) = &p.role {
                attributes.push_str(&format!(" role=\"{role}\""));
            }
            inner = format!("<mstts:express-as{attributes}>{inner}</mstts:express-as>");
        }
        format!(
            "<speak version=\"1.0\" xmlns=\"http://www.w3.org/2001/10/synthesis\" \
             xmlns:mstts=\"https://www.w3.org/2001/mstts\" xml:lang=\"{language}\">\
             <voice name=\"{}\">{inner}</voice></speak>",
            escape(voice)
        )
    }

    async fn send(&self, ssml: &str) -> Result<reqwest::Response, ProviderError> {
        let format = format!("raw-{}khz-16bit-mono-pcm", self.sample_rate() / 1000);
        let retries = crate::vendors::retries(self.params.max_retries);
        crate::retry::before_first_byte(retries, || async {
            let request = self
                .http
                .post(self.url())
                .header("Ocp-Apim-Subscription-Key", &self.params.key)
                .header("Content-Type", "application/ssml+xml")
                .header("X-Microsoft-OutputFormat", &format)
                .header("User-Agent", "colloquy")
                .body(ssml.to_owned());
            match tokio::time::timeout(self.timeout(), request.send()).await {
                Err(_) => Err((ProviderError::Timeout(self.timeout()), None)),
                Ok(Err(e)) => Err((ProviderError::Unavailable(crate::remote::describe(e)), None)),
                Ok(Ok(response)) if response.status().is_success() => Ok(response),
                Ok(Ok(response)) => Err(crate::remote::refusal(response).await),
            }
        })
        .await
    }
}

impl TtsProvider for MicrosoftTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let voice = if request.voice.is_empty() { self.params.voice_name.clone() } else { request.voice.clone() };
        let ssml = self.ssml(&request.text, &voice, request.speed);
        let client = MicrosoftTts { params: self.params.clone(), http: self.http.clone() };
        crate::vendors::spawn_synthesis(move |chunks| async move { speak(&client, &ssml, &request, &chunks).await })
    }
}

async fn speak(
    client: &MicrosoftTts,
    ssml: &str,
    request: &TtsRequest,
    chunks: &mpsc::Sender<Result<TtsChunk, ProviderError>>,
) -> Result<(), ProviderError> {
    let response = client.send(ssml).await?;
    let mut body = response.bytes_stream();
    let mut audio = crate::vendors::ClauseAudio::new(chunks, request.turn, client.sample_rate());
    loop {
        match tokio::time::timeout(client.timeout(), body.next()).await {
            Err(_) => return Err(ProviderError::CutStream(format!("no audio for {:?}", client.timeout()))),
            Ok(None) if !audio.started() => return Err(ProviderError::BadResponse("Azure answered no audio".into())),
            Ok(None) => return Ok(()),
            Ok(Some(Err(e))) => return Err(ProviderError::CutStream(crate::remote::describe(e))),
            Ok(Some(Ok(bytes))) => {
                if !audio.push(&bytes).await {
                    return Ok(());
                }
            }
        }
    }
}

/// Text for an SSML element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&apos;")
}
