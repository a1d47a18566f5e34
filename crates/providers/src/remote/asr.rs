//! `POST {url}/audio/transcriptions` (multipart, a WAV file). The API has no partials: the final
//! transcript comes once the utterance's audio is complete.

use colloquy_model::RemoteEndpoint;
use futures_util::StreamExt;

use super::OpenAiClient;
use crate::asr::{ASR_SAMPLE_RATE, AsrEvent, AsrProvider, AsrRequest};
use crate::{ProviderError, ProviderStream};

/// Any OpenAI-compatible transcription server.
#[derive(Debug)]
pub struct RemoteAsr {
    client: OpenAiClient,
}

impl RemoteAsr {
    pub fn new(endpoint: RemoteEndpoint) -> Result<RemoteAsr, ProviderError> {
        Ok(RemoteAsr { client: OpenAiClient::new(endpoint)? })
    }
}

/// 16-bit mono WAV bytes of `samples` at `rate`.
pub fn wav_bytes(samples: &[f32], rate: u32) -> Vec<u8> {
    let data_len = (samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + samples.len() * 2);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // mono
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in samples {
        out.extend_from_slice(&((sample.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
    }
    out
}

impl AsrProvider for RemoteAsr {
    fn transcribe(&self, mut request: AsrRequest) -> ProviderStream<AsrEvent> {
        let client = self.client.clone();
        let turn = request.turn;
        let stream = async move {
            let mut audio = Vec::new();
            while let Some(chunk) = request.audio.recv().await {
                audio.extend(chunk);
            }
            let wav = wav_bytes(&audio, ASR_SAMPLE_RATE);
            // The API takes ISO-639-1: the primary subtag of the BCP-47 tag.
            let language = request.language.split('-').next().unwrap_or_default().to_ascii_lowercase();
            let model = client.endpoint().model.clone();
            let response = client
                .send("audio/transcriptions", &|r| {
                    let file = reqwest::multipart::Part::bytes(wav.clone())
                        .file_name("audio.wav")
                        .mime_str("audio/wav")
                        .expect("a valid MIME type");
                    let mut form = reqwest::multipart::Form::new()
                        .part("file", file)
                        .text("model", model.clone())
                        .text("response_format", "json");
                    if !language.is_empty() {
                        form = form.text("language", language.clone());
                    }
                    r.multipart(form)
                })
                .await?;
            let body: serde_json::Value = tokio::time::timeout(client.timeout(), response.json())
                .await
                .map_err(|_| ProviderError::CutStream("the transcript did not arrive in time".into()))?
                .map_err(|e| {
                    ProviderError::BadResponse(format!("the transcript is not JSON: {}", super::describe(e)))
                })?;
            let text =
                body["text"].as_str().ok_or_else(|| ProviderError::BadResponse(format!("no text in {body:.200}")))?;
            Ok(AsrEvent::Final { turn, text: text.trim().to_owned() })
        };
        futures_util::stream::once(stream).boxed()
    }
}
