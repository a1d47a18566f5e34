//! Piper (VITS) voices through ONNX Runtime: text → espeak-ng phonemes → ids from the voice's
//! `phoneme_id_map` (`^`, each phoneme followed by `_`, `$`) → `input` [1, N], `input_lengths` [1],
//! `scales` [noise, length, noise_w] → f32 PCM at the voice's rate. One sentence per request.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures_util::StreamExt;
use ort::session::Session;
use ort::value::Tensor;

use super::OnnxRuntime;
use super::espeak::Espeak;
use crate::models::ModelError;
use crate::tts::{TtsChunk, TtsProvider, TtsRequest};
use crate::{ProviderError, ProviderStream};

/// A loaded Piper voice, shared by every session.
#[derive(Debug, Clone)]
pub struct PiperTts {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// ONNX Runtime's `run` takes `&mut`: sentences of all sessions take turns.
    session: Mutex<Session>,
    espeak: Espeak,
    ids: HashMap<char, Vec<i64>>,
    sample_rate: u32,
    noise_scale: f32,
    length_scale: f32,
    noise_w: f32,
}

impl PiperTts {
    /// Loads the voice at `model` (its config is `model` + `.json`) and starts espeak-ng.
    pub fn load(runtime: &OnnxRuntime, model: &Path) -> Result<PiperTts, ModelError> {
        let config_path = model.with_extension("onnx.json");
        let text =
            std::fs::read_to_string(&config_path).map_err(|e| ModelError::unusable(&config_path, e.to_string()))?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::unusable(&config_path, e.to_string()))?;
        let mut ids = HashMap::new();
        for (phoneme, id) in config["phoneme_id_map"].as_object().into_iter().flatten() {
            let mut chars = phoneme.chars();
            if let (Some(c), None) = (chars.next(), chars.next()) {
                ids.insert(c, id.as_array().into_iter().flatten().filter_map(|v| v.as_i64()).collect());
            }
        }
        for required in ['^', '_', '$'] {
            if !ids.contains_key(&required) {
                return Err(ModelError::unusable(&config_path, format!("the phoneme map has no {required:?}")));
            }
        }
        let voice = config["espeak"]["voice"].as_str().unwrap_or("en-us");
        let espeak = Espeak::start(voice).map_err(|e| ModelError::unusable(model, format!("phonemes: {e}")))?;
        let inference = &config["inference"];
        Ok(PiperTts {
            inner: Arc::new(Inner {
                session: Mutex::new(runtime.session(model)?),
                espeak,
                ids,
                sample_rate: config["audio"]["sample_rate"].as_u64().unwrap_or(22_050) as u32,
                noise_scale: inference["noise_scale"].as_f64().unwrap_or(0.667) as f32,
                length_scale: inference["length_scale"].as_f64().unwrap_or(1.0) as f32,
                noise_w: inference["noise_w"].as_f64().unwrap_or(0.8) as f32,
            }),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.inner.sample_rate
    }
}

impl Inner {
    /// The phoneme ids of `text`: `^ _ (p _)* $`, clauses joined by a comma, ending with the
    /// text's own final punctuation (espeak-ng's IPA output drops it).
    fn ids(&self, text: &str) -> Result<Vec<i64>, ProviderError> {
        let clauses = self.espeak.phonemes(text)?;
        let ending = text.trim_end().chars().last().filter(|c| ".!?,;:".contains(*c)).unwrap_or('.');
        let mut phonemes = clauses.join(", ");
        phonemes.push(ending);
        let mut ids = self.ids[&'^'].clone();
        ids.extend(&self.ids[&'_']);
        for c in phonemes.chars() {
            if let Some(id) = self.ids.get(&c) {
                ids.extend(id);
                ids.extend(&self.ids[&'_']);
            }
        }
        ids.extend(&self.ids[&'$']);
        Ok(ids)
    }

    fn speak(&self, text: &str, speed: f32) -> Result<Vec<i16>, ProviderError> {
        let ids = self.ids(text)?;
        let fail = |e: ort::Error| ProviderError::BadResponse(format!("Piper: {e}"));
        let length = ids.len();
        let inputs = ort::inputs! {
            "input" => Tensor::from_array(([1usize, length], ids)).map_err(fail)?,
            "input_lengths" => Tensor::from_array(([1usize], vec![length as i64])).map_err(fail)?,
            "scales" => Tensor::from_array(([3usize], vec![self.noise_scale, self.length_scale / speed.max(0.1), self.noise_w])).map_err(fail)?,
        };
        let mut session =
            self.session.lock().map_err(|_| ProviderError::Unavailable("the Piper lock is poisoned".into()))?;
        let outputs = session.run(inputs).map_err(fail)?;
        let (_, audio) = outputs["output"].try_extract_tensor::<f32>().map_err(fail)?;
        Ok(audio.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16).collect())
    }
}

impl TtsProvider for PiperTts {
    fn synthesize(&self, request: TtsRequest) -> ProviderStream<TtsChunk> {
        let inner = Arc::clone(&self.inner);
        let work = async move {
            if request.text.trim().is_empty() {
                return Err(ProviderError::BadResponse("nothing to say".into()));
            }
            let (text, speed, turn, rate) = (request.text, request.speed, request.turn, inner.sample_rate);
            let pcm = tokio::task::spawn_blocking(move || inner.speak(&text, speed))
                .await
                .map_err(|e| ProviderError::Unavailable(format!("Piper task: {e}")))??;
            Ok(TtsChunk { turn, sample_rate: rate, pcm })
        };
        futures_util::stream::once(work).boxed()
    }
}
