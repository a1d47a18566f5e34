//! Whisper speech recognition in process, through candle's Whisper model (`candle_transformers::
//! models::whisper`), with the weights read straight from the CTranslate2 conversion the model files
//! come in (`{stem}.bin`, `{stem}.config.json`, `{stem}.vocabulary.txt`; see [`super::ct2`]).
//!
//! **Weights.** CTranslate2's names are mapped onto the Hugging Face ones candle expects: the fused
//! self-attention projection `linear_0` [3d, d] splits into q, k and v, the fused cross-attention
//! `linear_1` [2d, d] into k and v (Whisper's key projections have no bias; CTranslate2 stores zeros
//! there, and a key bias would cancel in the softmax anyway), `gamma`/`beta` become layer-norm
//! `weight`/`bias`, `decoder/embeddings` the (tied) token embedding and output projection. Weights
//! are f16 on disk and f32 in memory. candle's model runs the audio encoder; the text decoder is
//! [`decoder`]'s, on the same weights, because candle's recomputes every earlier token at every step.
//!
//! **Windows.** Whisper was trained on 30 s windows, but its encoder takes any even number of mel
//! frames up to 3000 (candle narrows the positional embedding to the input), and its cost grows with
//! the frames. So the encoder sees only the audio there is plus [`PAD_FRAMES`] of silence, at least
//! [`MIN_FRAMES`]: a 3 s utterance encodes about fifteen times faster than in a 30 s window. Audio
//! longer than 30 s is cut into 30 s windows, decoded one after the other.
//!
//! **Decoding.** Greedy, with the prompt `<|startoftranscript|>` (multilingual models: then the
//! language and `<|transcribe|>`) `<|notimestamps|>`; the config's `suppress_ids` (and
//! `suppress_ids_begin` for the first token) never come out, nor do any special or timestamp tokens.
//! It stops at `<|endoftext|>`, after a token budget that grows with the audio's length, when the
//! text starts a sentence it has already said (short windows often make Whisper say the transcript
//! twice), or when it loops on a shorter phrase: the repeats are dropped. Short windows also sometimes make it end early after a garbled word, with a low
//! average log-probability: for final transcripts such a window is decoded again in a whole 30 s
//! window and the more confident result kept. Digital silence is not decoded at all, and, as in
//! OpenAI's `transcribe`, a window whose `<|nospeech|>` probability is above 0.6 and whose average
//! log-probability is below -1 counts as silence.
//!
//! **Streaming** ([`AsrProvider`]): audio accumulates; every [`WhisperAsr::DEFAULT_PARTIAL_INTERVAL`]
//! of new audio the whole utterance so far is decoded again for a `Partial`, unless a decode is
//! already running (work never queues). When the audio ends the running partial is abandoned and
//! the whole utterance decoded for the `Final`. Dropping the stream stops the work at the next
//! decoder step (the encoder, one candle call, finishes first: tens of milliseconds for seconds of
//! audio).
//!
//! [`AsrProvider`]: crate::asr::AsrProvider

mod decoder;
mod mel;
mod stream;
mod tokens;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::whisper::{Config, model::Whisper};
use colloquy_model::LocalAsrModel;

use self::decoder::TextDecoder;
use self::mel::{HOP, MelFrontEnd};
use self::tokens::Vocabulary;
use super::ct2::Ct2Model;
use crate::ProviderError;
use crate::models::ModelError;

/// Silence after the audio in the encoder's window, in mel frames (10 ms each). Measured with
/// tiny.en on the LibriVox test clips and Piper's sentences: the transcripts are the same from 0 to
/// 400 frames (but for one word against a 30 s window: "ill-disposed" in clip 0890 becomes
/// "old-sposed", as 0880 does even in a 30 s window), thanks to the guards below; what changes is
/// how often they are needed. With under 30 frames some LibriVox clips are said twice over
/// ([`said_again`] stops them); from 50 to 300, clip 0880 ends early after a garbled word (the
/// whole-window fallback redoes it); with 30 and 40 neither happens. Piper's sentences start over
/// after their end at any padding under about 500 frames, which costs four tokens each.
const PAD_FRAMES: usize = 30;
/// The fewest frames the encoder sees, for very short clips. Short words ("Yes.", "Stop.") decode
/// the same from 50 frames up to a whole window; a second keeps a margin and costs little.
const MIN_FRAMES: usize = 100;

/// Text tokens the decoder may produce per second of audio, beyond a base of 16: about three times
/// fast speech. A stop for runaway decoding; `<|endoftext|>` comes well before.
const TOKENS_PER_SECOND: usize = 12;
/// A final transcript's window decoded with a lower average log-probability than this is decoded
/// again in a whole window. Good short-window decodes of the test clips average -0.05 to -0.45; the
/// bad ones (cut short after a garbled word) around -0.9.
const FALLBACK_LOGPROB: f32 = -0.6;
/// Audio whose peak stays below this (-60 dBFS) is silence, not decoded.
const SILENCE_PEAK: f32 = 0.001;
/// OpenAI's thresholds for calling a window silence.
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f32 = -1.0;

/// A loaded Whisper model, shared by every session (clones share the weights).
#[derive(Debug, Clone)]
pub struct WhisperAsr {
    inner: Arc<Inner>,
    partial_interval: Option<Duration>,
}

struct Inner {
    kind: LocalAsrModel,
    /// candle's model, for its audio encoder: each decode runs a clone (sharing the weights).
    model: Whisper,
    /// The text decoder, with a self-attention cache (see [`decoder`]); same weights.
    decoder: TextDecoder,
    mel: MelFrontEnd,
    vocabulary: Vocabulary,
    special: Special,
    /// Per token id: never produce it.
    suppressed: Vec<bool>,
    /// Not as the first token either.
    suppressed_first: Vec<u32>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Whisper")
            .field("model", &self.kind.as_str())
            .field("d_model", &self.model.config.d_model)
            .field("layers", &(self.model.config.encoder_layers, self.model.config.decoder_layers))
            .field("vocabulary", &self.vocabulary.len())
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy)]
struct Special {
    end_of_text: u32,
    start: u32,
    translate: u32,
    transcribe: u32,
    no_timestamps: u32,
    no_speech: Option<u32>,
}

impl Special {
    fn find(vocabulary: &Vocabulary) -> Option<Special> {
        Some(Special {
            end_of_text: vocabulary.id("<|endoftext|>")?,
            start: vocabulary.id("<|startoftranscript|>")?,
            translate: vocabulary.id("<|translate|>")?,
            transcribe: vocabulary.id("<|transcribe|>")?,
            no_timestamps: vocabulary.id("<|notimestamps|>")?,
            // Called <|nocaptions|> in the older vocabularies.
            no_speech: vocabulary.id("<|nospeech|>").or_else(|| vocabulary.id("<|nocaptions|>")),
        })
    }
}

impl WhisperAsr {
    /// How much new audio the streaming path waits for before decoding again for a partial.
    pub const DEFAULT_PARTIAL_INTERVAL: Duration = Duration::from_millis(500);

    /// Loads `{stem}.bin`, `{stem}.config.json` and `{stem}.vocabulary.txt` from `models_dir`.
    pub fn load(models_dir: &Path, model: LocalAsrModel) -> Result<WhisperAsr, ModelError> {
        let kind = model;
        let stem = kind.as_str();
        let bin = models_dir.join(format!("{stem}.bin"));
        let config_path = models_dir.join(format!("{stem}.config.json"));
        let vocabulary_path = models_dir.join(format!("{stem}.vocabulary.txt"));

        let vocabulary = Vocabulary::read(&vocabulary_path)?;
        let special = Special::find(&vocabulary)
            .ok_or_else(|| ModelError::unusable(&vocabulary_path, "a Whisper special token is missing"))?;

        let text =
            std::fs::read_to_string(&config_path).map_err(|e| ModelError::unusable(&config_path, e.to_string()))?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::unusable(&config_path, e.to_string()))?;
        let ids = |key: &str| -> Vec<u32> {
            config[key].as_array().into_iter().flatten().filter_map(|v| v.as_u64()).map(|v| v as u32).collect()
        };
        let mut suppressed = vec![false; vocabulary.len()];
        for id in ids("suppress_ids") {
            if let Some(s) = suppressed.get_mut(id as usize) {
                *s = true;
            }
        }
        // Only text and <|endoftext|>: no task, language, timestamp or other special token.
        for s in suppressed.iter_mut().skip(special.end_of_text as usize + 1) {
            *s = true;
        }
        let suppressed_first = ids("suppress_ids_begin");

        let ct2 = Ct2Model::read(&bin)?;
        let (model, decoder) =
            build_model(&ct2, vocabulary.len()).map_err(|problem| ModelError::unusable(&bin, problem))?;
        drop(ct2);
        let mel = MelFrontEnd::new(model.config.num_mel_bins).map_err(|e| ModelError::unusable(&bin, e.to_string()))?;
        let inner = Inner { kind, model, decoder, mel, vocabulary, special, suppressed, suppressed_first };
        // Shows that the model runs (about 40 ms for tiny.en) before the first turn needs it.
        inner.warm_up().map_err(|e| ModelError::unusable(&bin, format!("the model does not run: {e}")))?;
        tracing::debug!(model = stem, "Whisper loaded");
        Ok(WhisperAsr { inner: Arc::new(inner), partial_interval: Some(WhisperAsr::DEFAULT_PARTIAL_INTERVAL) })
    }

    /// Which model this is.
    pub fn model(&self) -> LocalAsrModel {
        self.inner.kind
    }

    /// How much new audio the streaming path waits for before decoding again for a partial
    /// transcript; `None`: no partials, only the final one.
    pub fn with_partial_interval(mut self, interval: Option<Duration>) -> WhisperAsr {
        self.partial_interval = interval;
        self
    }

    /// The transcript of a whole clip: 16 kHz mono samples in [-1, 1], `language` a BCP-47 tag (an
    /// English-only model refuses other languages). Blocks: call it off the async runtime.
    pub fn transcribe_blocking(&self, samples_16k: &[f32], language: &str) -> Result<String, ProviderError> {
        let prompt = self.inner.prompt(language)?;
        Ok(self.inner.transcribe(samples_16k, &prompt, true, &|| false)?.unwrap_or_default())
    }
}

/// Renames the CTranslate2 variables to the names candle's Whisper loads, and loads it.
fn build_model(ct2: &Ct2Model, vocabulary: usize) -> Result<(Whisper, TextDecoder), String> {
    if ct2.spec != "WhisperSpec" {
        return Err(format!("a {} model, not Whisper", ct2.spec));
    }
    let dims = |name: &str| ct2.variable(name).map(|v| v.dims.clone()).ok_or(format!("the model has no {name}"));
    let conv1 = dims("encoder/conv1/weight")?;
    let [d_model, num_mel_bins, _] = conv1[..] else { return Err(format!("encoder/conv1/weight is {conv1:?}")) };
    let layers = |side: &str| {
        let prefix = format!("{side}/layer_");
        ct2.names()
            .filter_map(|n| n.strip_prefix(&prefix)?.split('/').next()?.parse::<usize>().ok())
            .map(|i| i + 1)
            .max()
            .unwrap_or(0)
    };
    let heads = |side: &str| ct2.integer(&format!("{side}/num_heads")).map(|h| h as usize).unwrap_or(d_model / 64);
    let config = Config {
        num_mel_bins,
        max_source_positions: dims("encoder/position_encodings/encodings")?[0],
        d_model,
        encoder_attention_heads: heads("encoder"),
        encoder_layers: layers("encoder"),
        vocab_size: dims("decoder/embeddings/weight")?[0],
        max_target_positions: dims("decoder/position_encodings/encodings")?[0],
        decoder_attention_heads: heads("decoder"),
        decoder_layers: layers("decoder"),
        suppress_tokens: Vec::new(),
    };
    if config.vocab_size != vocabulary {
        return Err(format!("{} token embeddings for a vocabulary of {vocabulary}", config.vocab_size));
    }

    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let get = |name: &str| ct2.tensor(name).map_err(|e| e.problem);
    let mut copy = |from: &str, to: &str| -> Result<(), String> {
        tensors.insert(to.to_owned(), get(from)?);
        Ok(())
    };
    for conv in ["conv1", "conv2"] {
        for part in ["weight", "bias"] {
            copy(&format!("encoder/{conv}/{part}"), &format!("model.encoder.{conv}.{part}"))?;
        }
    }
    copy("decoder/embeddings/weight", "model.decoder.embed_tokens.weight")?;
    copy("decoder/position_encodings/encodings", "model.decoder.embed_positions.weight")?;
    for side in ["encoder", "decoder"] {
        copy(&format!("{side}/layer_norm/gamma"), &format!("model.{side}.layer_norm.weight"))?;
        copy(&format!("{side}/layer_norm/beta"), &format!("model.{side}.layer_norm.bias"))?;
    }
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut fused: Vec<(String, String, Vec<&str>)> = Vec::new();
    for (side, count) in [("encoder", config.encoder_layers), ("decoder", config.decoder_layers)] {
        for i in 0..count {
            let (c, h) = (format!("{side}/layer_{i}"), format!("model.{side}.layers.{i}"));
            let mut norm = |from: &str, to: &str| {
                pairs.push((format!("{c}/{from}/gamma"), format!("{h}.{to}.weight")));
                pairs.push((format!("{c}/{from}/beta"), format!("{h}.{to}.bias")));
            };
            norm("self_attention/layer_norm", "self_attn_layer_norm");
            norm("ffn/layer_norm", "final_layer_norm");
            if side == "decoder" {
                norm("attention/layer_norm", "encoder_attn_layer_norm");
            }
            let mut linear = |from: &str, to: &str| {
                pairs.push((format!("{c}/{from}/weight"), format!("{h}.{to}.weight")));
                pairs.push((format!("{c}/{from}/bias"), format!("{h}.{to}.bias")));
            };
            linear("self_attention/linear_1", "self_attn.out_proj");
            linear("ffn/linear_0", "fc1");
            linear("ffn/linear_1", "fc2");
            fused.push((format!("{c}/self_attention/linear_0"), format!("{h}.self_attn"), vec!["q", "k", "v"]));
            if side == "decoder" {
                linear("attention/linear_0", "encoder_attn.q_proj");
                linear("attention/linear_2", "encoder_attn.out_proj");
                fused.push((format!("{c}/attention/linear_1"), format!("{h}.encoder_attn"), vec!["k", "v"]));
            }
        }
    }
    for (from, to) in pairs {
        copy(&from, &to)?;
    }
    for (from, to, parts) in fused {
        let weight = get(&format!("{from}/weight"))?;
        let bias = get(&format!("{from}/bias"))?;
        let weights = weight.chunk(parts.len(), 0).map_err(|e| format!("{from}: {e}"))?;
        let biases = bias.chunk(parts.len(), 0).map_err(|e| format!("{from}: {e}"))?;
        for ((part, weight), bias) in parts.iter().zip(weights).zip(biases) {
            tensors.insert(format!("{to}.{part}_proj.weight"), weight);
            // The key projection has no bias (a constant added to every key cancels in the softmax).
            if *part != "k" {
                tensors.insert(format!("{to}.{part}_proj.bias"), bias);
            }
        }
    }
    let decoder = TextDecoder::load(&tensors, config.decoder_layers, config.decoder_attention_heads)?;
    let vb = VarBuilder::from_tensors(tensors, DType::F32, &Device::Cpu);
    let model = Whisper::load(&vb, config).map_err(|e| format!("the weights do not fit Whisper: {e}"))?;
    Ok((model, decoder))
}

impl Inner {
    /// The decoder prompt for `language`.
    fn prompt(&self, language: &str) -> Result<Vec<u32>, ProviderError> {
        let s = self.special;
        if !self.multilingual() {
            if !self.kind.understands(language) {
                return Err(ProviderError::BadResponse(format!(
                    "{} only understands English, not {language:?}",
                    self.kind.as_str()
                )));
            }
            return Ok(vec![s.start, s.no_timestamps]);
        }
        let primary = language.split(['-', '_']).next().unwrap_or_default().to_ascii_lowercase();
        let language_token = self
            .vocabulary
            .id(&format!("<|{primary}|>"))
            .filter(|id| (s.start + 1..s.translate).contains(id))
            .ok_or_else(|| ProviderError::BadResponse(format!("Whisper does not know the language {language:?}")))?;
        Ok(vec![s.start, language_token, s.transcribe, s.no_timestamps])
    }

    /// Whisper's rule: the multilingual vocabulary has a token more (a second language slot).
    fn multilingual(&self) -> bool {
        self.vocabulary.len() >= 51_865
    }

    /// Decodes a second of silence, a few tokens.
    fn warm_up(&self) -> candle_core::Result<()> {
        let mel = self.mel.log_mel(&[], MIN_FRAMES)?;
        let prompt = [self.special.start, self.special.no_timestamps];
        self.decode(&mel, &prompt, 3, &|| false).map(drop)
    }

    /// The encoder frames for a window of `audio` frames: padded with silence, even, at most a
    /// whole window.
    fn window_frames(&self, audio: usize) -> usize {
        let whole = self.model.config.max_source_positions * 2;
        (audio + PAD_FRAMES).max(MIN_FRAMES).next_multiple_of(2).min(whole)
    }

    /// The transcript of `samples`, window after window; `None` when `stop` said to stop. `careful`
    /// (final transcripts): a window decoded with little confidence is decoded again in a whole
    /// 30 s window, as Whisper was trained, and the more confident result wins.
    fn transcribe(
        &self,
        samples: &[f32],
        prompt: &[u32],
        careful: bool,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<String>, ProviderError> {
        if samples.is_empty() {
            return Ok(Some(String::new()));
        }
        let fail = |e: candle_core::Error| ProviderError::BadResponse(format!("Whisper: {e}"));
        let whole = self.model.config.max_source_positions * 2;
        let audio_frames = samples.len().div_ceil(HOP);
        // (first frame, audio frames) of each window.
        let windows: Vec<(usize, usize)> =
            (0..audio_frames).step_by(whole).map(|start| (start, (audio_frames - start).min(whole))).collect();
        let last = windows.last().map(|(start, _)| start + whole).unwrap_or(0);
        // Enough frames for the last window in a whole 30 s window; the short windows use fewer.
        let mel = self.mel.log_mel(samples, last).map_err(fail)?;
        let mut texts = Vec::new();
        for (start, audio) in windows {
            // Digital silence (below -60 dBFS throughout) has no words; Whisper would invent some.
            let range = start * HOP..((start + audio) * HOP).min(samples.len());
            if samples[range].iter().all(|s| s.abs() < SILENCE_PEAK) {
                continue;
            }
            let seconds = audio as f64 * HOP as f64 / 16_000.0;
            let budget = (16 + (seconds * TOKENS_PER_SECOND as f64).ceil() as usize)
                .min(self.model.config.max_target_positions / 2);
            let frames = self.window_frames(audio);
            let window = mel.narrow(2, start, frames).map_err(fail)?;
            let Some(mut decoded) = self.decode(&window, prompt, budget, stop).map_err(fail)? else {
                return Ok(None);
            };
            // Unless the model thinks there is no speech: a larger window only makes it surer of
            // what it invents.
            let unsure = decoded.average_logprob < FALLBACK_LOGPROB && decoded.no_speech <= NO_SPEECH_THRESHOLD;
            if careful && unsure && frames < whole {
                let window = mel.narrow(2, start, whole).map_err(fail)?;
                let Some(again) = self.decode(&window, prompt, budget, stop).map_err(fail)? else {
                    return Ok(None);
                };
                tracing::debug!(short = decoded.average_logprob, whole = again.average_logprob, "Whisper fallback");
                if again.average_logprob > decoded.average_logprob {
                    decoded = again;
                }
            }
            let text = self.vocabulary.decode(&decoded.tokens);
            if !text.is_empty() {
                texts.push(text);
            }
        }
        Ok(Some(texts.join(" ")))
    }

    /// Greedy decoding of one window's mel [1, n_mels, frames]; `None` if stopped.
    fn decode(
        &self,
        mel: &Tensor,
        prompt: &[u32],
        budget: usize,
        stop: &dyn Fn() -> bool,
    ) -> candle_core::Result<Option<Decoded>> {
        if stop() {
            return Ok(None);
        }
        // A clone shares the weights; `forward` takes `&mut` for candle's attention caches.
        let mut encoder = self.model.encoder.clone();
        let features = encoder.forward(mel, true)?;
        let mut decoding = self.decoder.start(&features)?;
        let mut tokens = prompt.to_vec();
        let hidden = decoding.feed(prompt)?;
        // The prediction after <|startoftranscript|> gives the no-speech probability; the one after
        // the whole prompt, the first token.
        let positions = Tensor::new(&[0u32, prompt.len() as u32 - 1], &Device::Cpu)?;
        let [first, mut logits]: [Vec<f32>; 2] =
            self.decoder.logits(&hidden.index_select(&positions, 0)?)?.try_into().expect("two rows");
        let no_speech = self.special.no_speech.map(|id| softmax_at(&first, id as usize)).unwrap_or(0.0);
        let mut sum_logprob = 0f32;
        // The generated tokens' text, for `said_again`.
        let mut words: Vec<String> = Vec::new();
        for step in 0..budget {
            if stop() {
                return Ok(None);
            }
            if step > 0 {
                let hidden = decoding.feed(&tokens[tokens.len() - 1..])?;
                logits = self.decoder.logits(&hidden)?.swap_remove(0);
            }
            for (logit, suppressed) in logits.iter_mut().zip(&self.suppressed) {
                if *suppressed {
                    *logit = f32::NEG_INFINITY;
                }
            }
            if step == 0 {
                for id in &self.suppressed_first {
                    if let Some(logit) = logits.get_mut(*id as usize) {
                        *logit = f32::NEG_INFINITY;
                    }
                }
            }
            let (best, best_logit) = logits
                .iter()
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .unwrap_or((self.special.end_of_text as usize, 0.0));
            sum_logprob += best_logit - log_sum_exp(&logits);
            let best = best as u32;
            if best == self.special.end_of_text {
                break;
            }
            tokens.push(best);
            words.push(self.vocabulary.decode(&[best]));
            let ends_sentence = |id: u32| self.vocabulary.decode(&[id]).ends_with(SENTENCE_ENDS);
            if let Some(keep) = said_again(&words).or_else(|| looping(&tokens[prompt.len()..], ends_sentence)) {
                tokens.truncate(prompt.len() + keep);
                break;
            }
        }
        let tokens = tokens.split_off(prompt.len());
        let average_logprob = sum_logprob / (tokens.len() + 1) as f32;
        if no_speech > NO_SPEECH_THRESHOLD && average_logprob < LOGPROB_THRESHOLD {
            return Ok(Some(Decoded { tokens: Vec::new(), average_logprob: 0.0, no_speech }));
        }
        Ok(Some(Decoded { tokens, average_logprob, no_speech }))
    }
}

/// One window's text tokens, with their average log-probability (counting `<|endoftext|>`) and the
/// probability of `<|nospeech|>` after `<|startoftranscript|>`.
struct Decoded {
    tokens: Vec<u32>,
    average_logprob: f32,
    no_speech: f32,
}

fn log_sum_exp(logits: &[f32]) -> f32 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    if max == f32::NEG_INFINITY {
        return max;
    }
    max + logits.iter().map(|l| (l - max).exp()).sum::<f32>().ln()
}

fn softmax_at(logits: &[f32], index: usize) -> f32 {
    logits.get(index).map(|l| (l - log_sum_exp(logits)).exp()).unwrap_or(0.0)
}

/// Punctuation that ends a sentence.
const SENTENCE_ENDS: [char; 3] = ['.', '?', '!'];
/// How many tokens of a new sentence must repeat an earlier sentence's start for `said_again`.
const RESTART_TOKENS: usize = 4;

/// Whether the text (one string per token) has just started saying an earlier sentence again: the
/// new sentence's first [`RESTART_TOKENS`] tokens are those of an earlier one (in any case). Short
/// windows often make Whisper say the whole transcript twice ("… breeze. The weather …"); this
/// stops it four tokens in rather than at the end of the second copy. How many tokens to keep: up
/// to the new sentence.
fn said_again(words: &[String]) -> Option<usize> {
    let start = words.len().checked_sub(RESTART_TOKENS).filter(|s| *s > 0)?;
    let ends = |i: usize| words[i].trim_end().ends_with(SENTENCE_ENDS);
    if !ends(start - 1) {
        return None;
    }
    let same =
        |a: &[String], b: &[String]| a.iter().zip(b).all(|(a, b)| a.trim().to_lowercase() == b.trim().to_lowercase());
    let last = start.checked_sub(RESTART_TOKENS)?;
    let again =
        (0..=last).filter(|&i| i == 0 || ends(i - 1)).any(|i| same(&words[i..i + RESTART_TOKENS], &words[start..]));
    again.then_some(start)
}

/// Whether `tokens` ends in a loop: the same n-gram over and over (a single token 12 times, a pair
/// 6 times, three tokens 4 times, four or five 3 times, longer ones twice). If so, how many tokens
/// to keep: the text before the loop and one copy, cut after the copy's last sentence end if it has
/// one (a loop found mid-sentence, "… breeze. The weather … breeze. The", keeps "… breeze.").
fn looping(tokens: &[u32], ends_sentence: impl Fn(u32) -> bool) -> Option<usize> {
    let len = tokens.len();
    let n = (1..=len / 2).find(|&n| {
        let copies = 12usize.div_ceil(n).max(2);
        n * copies <= len && tokens[len - n * copies..].chunks_exact(n).all(|c| c == &tokens[len - n..])
    })?;
    let copies = 12usize.div_ceil(n).max(2);
    // Where the periodic part really starts.
    let mut start = len - n * copies;
    while start > 0 && tokens[start - 1] == tokens[start - 1 + n] {
        start -= 1;
    }
    let one_copy = start + n;
    Some((start + 1..=one_copy).rev().find(|&end| ends_sentence(tokens[end - 1])).unwrap_or(one_copy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loops_are_cut_to_one_copy() {
        let never = |_| false;
        assert_eq!(looping(&[1, 2, 3], never), None);
        assert_eq!(looping(&[5; 11], never), None);
        assert_eq!(looping(&[5; 12], never), Some(1));
        assert_eq!(looping(&[9, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2], never), Some(3));
        assert_eq!(looping(&[1, 2, 1, 2, 1, 2], never), None);
        assert_eq!(looping(&[7, 7, 1, 2, 3, 4, 1, 2, 3, 4, 1, 2, 3, 4], never), Some(6));
        // "no, no, no" is speech, not a loop; a six-token phrase said twice is.
        assert_eq!(looping(&[10, 11, 10, 11, 10], never), None);
        assert_eq!(looping(&[8, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6], never), Some(7));
        // The loop began before the copies found (the 8 before them is the period's last token).
        assert_eq!(looping(&[9, 8, 1, 2, 3, 4, 5, 8, 1, 2, 3, 4, 5, 8], never), Some(7));
    }

    #[test]
    fn a_sentence_said_again_is_cut_where_it_starts() {
        let words = |text: &str| -> Vec<String> { text.split('|').map(str::to_owned).collect() };
        // "The weather is fine. The weather is…": cut after "fine.", whatever the case.
        let text = words(" the| weather| is| fine|.| The| weather| is| fine");
        assert_eq!(said_again(&text[..8]), None);
        assert_eq!(said_again(&text), Some(5));
        // A later sentence said again.
        let text = words(" Hello| there|.| How| can| I| help|?| How| can| I| help");
        assert_eq!(said_again(&text), Some(8));
        // A new sentence that starts like an earlier one but goes on differently is not cut…
        let text = words(" I| think| so|.| I| think| that");
        assert_eq!(said_again(&text), None);
        // …nor is a repeat inside a sentence, or one that does not start at a sentence start.
        assert_eq!(said_again(&words(" one| two| three| four| one| two| three| four")), None);
        assert_eq!(said_again(&words(" a| one| two| three| four|.| one| two| three| four")), None);
        assert_eq!(said_again(&words(" No|.| No| no| no| no")), None);
    }

    #[test]
    fn loops_found_mid_sentence_are_cut_at_the_sentence_end() {
        // "the weather will be so fine . The weather will be so fine . The": 0 = "the", 1 = "The",
        // 5 = ".".
        let tokens = [0, 2, 3, 4, 6, 7, 5, 1, 2, 3, 4, 6, 7, 5, 1];
        let full_stop = |id| id == 5;
        assert_eq!(looping(&tokens[..14], full_stop), None);
        assert_eq!(looping(&tokens, full_stop), Some(7));
        // Without a sentence end, one whole copy stays.
        assert_eq!(looping(&tokens, |_| false), Some(8));
    }

    #[test]
    fn log_sum_exp_is_stable() {
        assert!((log_sum_exp(&[1000.0, 1000.0]) - (1000.0 + 2f32.ln())).abs() < 1e-3);
        assert_eq!(log_sum_exp(&[f32::NEG_INFINITY]), f32::NEG_INFINITY);
        assert!((softmax_at(&[0.0, 0.0, f32::NEG_INFINITY], 1) - 0.5).abs() < 1e-6);
    }
}
