//! Microsoft Azure AI Speech recognition over the REST API for short audio, the utterance's audio
//! streamed up as it arrives.
//!
//! From Azure's "Speech to text REST API for short audio" reference: `POST
//! https://{region}.stt.speech.microsoft.com/speech/recognition/conversation/cognitiveservices/v1
//! ?language=en-US&format=simple` with `Ocp-Apim-Subscription-Key`, `Content-Type: audio/wav;
//! codecs=audio/pcm; samplerate=16000` and chunked transfer (the WAV header first, then the audio
//! as it is spoken); the answer is `{RecognitionStatus, DisplayText, Offset, Duration}`, with
//! `Success`, `NoMatch`, `InitialSilenceTimeout`, `BabbleTimeout` or `Error`. This API gives no
//! partial results and takes at most 60 s of audio; Azure's streaming protocol is the Speech SDK's
//! own and is not spoken here.

use std::sync::Arc;
use std::time::Duration;

use colloquy_model::{RemoteEndpoint, VendorParamError};
use futures_util::StreamExt;
use serde::Deserialize;

use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::vendors::{AsrVendor, VendorParams};
use crate::{ProviderError, ProviderStream};

pub(in crate::vendors) const ASR: AsrVendor = AsrVendor {
    name: "microsoft",
    about: "Microsoft Azure AI Speech recognition (REST for short audio, streamed up; no partials)",
    url_param: "base_url",
    check: crate::vendors::check_params::<MicrosoftAsrParams>,
    secrets: MicrosoftAsrParams::SECRETS,
    build: |choice| Ok(Arc::new(MicrosoftAsr::new(crate::vendors::params_of(choice)?)?) as Arc<dyn AsrProvider>),
};

/// Azure's recognition parameters (Agora's `asr.params` for vendor `microsoft`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MicrosoftAsrParams {
    /// Sent as `Ocp-Apim-Subscription-Key`. Secret.
    pub key: String,
    /// The resource's region (`eastus`).
    pub region: String,
    /// BCP-47 (`en-US`); default: the agent's `asr.language`.
    #[serde(default)]
    pub language: Option<String>,
    /// `masked` (Azure's default), `removed` or `raw`.
    #[serde(default)]
    pub profanity: Option<String>,
    /// Replaces `https://{region}.stt.speech.microsoft.com`.
    #[serde(default)]
    pub base_url: Option<String>,
    /// The longest wait for the answer after the utterance ends. Default 10000.
    #[serde(default)]
    pub timeout_ms: Option<u32>,
}

impl VendorParams for MicrosoftAsrParams {
    const SECRETS: &'static [&'static str] = &["key"];

    fn validate(&self) -> Result<(), VendorParamError> {
        let invalid =
            |field: &str, message: &str| Err(VendorParamError { field: field.into(), message: message.into() });
        if self.region.is_empty() || !self.region.chars().all(|c| c.is_ascii_alphanumeric()) {
            return invalid("region", "region must be an Azure region name such as \"eastus\"");
        }
        if self.profanity.as_deref().is_some_and(|p| !["masked", "removed", "raw"].contains(&p)) {
            return invalid("profanity", "profanity must be \"masked\", \"removed\" or \"raw\"");
        }
        if let Some(language) = &self.language
            && (language.is_empty() || !language.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
        {
            return invalid("language", "language must be a BCP-47 tag such as \"en-US\"");
        }
        if let Some(url) = &self.base_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return invalid("base_url", "base_url must be an http:// or https:// URL");
        }
        crate::vendors::in_range("timeout_ms", self.timeout_ms, RemoteEndpoint::TIMEOUT_RANGE_MS)
    }
}

/// The client; shared by every session that chose it.
#[derive(Debug)]
pub struct MicrosoftAsr {
    params: MicrosoftAsrParams,
    http: reqwest::Client,
}

impl MicrosoftAsr {
    pub fn new(params: MicrosoftAsrParams) -> Result<MicrosoftAsr, String> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("no HTTP client: {e}"))?;
        Ok(MicrosoftAsr { params, http })
    }

    fn url(&self, language: &str) -> String {
        let base = match &self.params.base_url {
            Some(base) => base.trim_end_matches('/').to_owned(),
            None => format!("https://{}.stt.speech.microsoft.com", self.params.region),
        };
        let language = self.params.language.as_deref().unwrap_or(language);
        let mut url = format!(
            "{base}/speech/recognition/conversation/cognitiveservices/v1?language={}&format=simple",
            crate::vendors::encode(language)
        );
        if let Some(profanity) = &self.params.profanity {
            url.push_str(&format!("&profanity={profanity}"));
        }
        url
    }
}

impl AsrProvider for MicrosoftAsr {
    fn transcribe(&self, request: AsrRequest) -> ProviderStream<AsrEvent> {
        let turn = request.turn;
        let url = self.url(&request.language);
        let timeout =
            Duration::from_millis(u64::from(self.params.timeout_ms.unwrap_or(RemoteEndpoint::DEFAULT_TIMEOUT_MS)));
        let call = self
            .http
            .post(url)
            .header("Ocp-Apim-Subscription-Key", &self.params.key)
            .header("Content-Type", format!("audio/wav; codecs=audio/pcm; samplerate={ASR_SAMPLE_RATE}"))
            .header("Accept", "application/json")
            .body(reqwest::Body::wrap_stream(wav_stream(request.audio)));
        let stream = async move {
            let response = call.send().await.map_err(|e| ProviderError::Unavailable(crate::remote::describe(e)))?;
            if !response.status().is_success() {
                return Err(crate::remote::refusal(response).await.0);
            }
            let body = tokio::time::timeout(timeout, response.bytes())
                .await
                .map_err(|_| ProviderError::Timeout(timeout))?
                .map_err(|e| ProviderError::CutStream(crate::remote::describe(e)))?;
            let answer: Answer = serde_json::from_slice(&body)
                .map_err(|e| ProviderError::BadResponse(format!("not an Azure recognition answer: {e}")))?;
            match answer.recognition_status.as_str() {
                "Success" => Ok(AsrEvent::Final { turn, text: answer.display_text.unwrap_or_default() }),
                "NoMatch" | "InitialSilenceTimeout" | "BabbleTimeout" => {
                    Ok(AsrEvent::Final { turn, text: String::new() })
                }
                status => Err(ProviderError::BadResponse(format!("Azure could not recognise the audio: {status}"))),
            }
        };
        Box::pin(futures_util::stream::once(stream))
    }
}

/// The audio as a WAV stream of unknown length: the header (its sizes at their maximum, as for a
/// live stream), then 16-bit PCM as it arrives.
fn wav_stream(
    audio: tokio::sync::mpsc::Receiver<Vec<f32>>,
) -> impl futures_util::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let mut header = crate::remote::wav_bytes(&[], ASR_SAMPLE_RATE);
    header[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
    header[40..44].copy_from_slice(&(u32::MAX - 36).to_le_bytes());
    let audio = futures_util::stream::unfold(audio, |mut audio| async move {
        let samples = audio.recv().await?;
        let pcm = crate::vendors::le_pcm16(&samples);
        Some((Ok(pcm), audio))
    });
    futures_util::stream::once(async move { Ok(header) }).chain(audio)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Answer {
    recognition_status: String,
    #[serde(default)]
    display_text: Option<String>,
}
