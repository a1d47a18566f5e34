//! A local language model: a GGUF file run in process by candle's quantized models.
//!
//! **Why candle and not llama.cpp** (through `llama-cpp-2`): candle is already our ML stack for
//! Whisper, so this is one stack, pure Rust, with no C++ build (llama.cpp adds about three minutes
//! and libclang to every build). Its quantized kernels, compiled for our x86-64-v3 target, run
//! SmolLM2-135M at about 70 tokens/s on a 2-core machine, and candle-core builds the tokenizer from
//! the GGUF's own metadata, so a model is one file. The price is that only the architectures
//! candle implements run, and only with the tokenizers candle reads from GGUF:
//!
//! - architecture `llama` (candle's `quantized_llama`): SmolLM and SmolLM2, Llama 3.x, and any
//!   llama-shaped model whose GGUF carries a byte-level BPE (`gpt2`) tokenizer;
//! - not Mistral, TinyLlama or Llama 2, although their architecture is `llama`: their GGUFs carry a
//!   SentencePiece (`llama`) tokenizer, which candle 0.11 cannot build; loading one fails with a
//!   message saying so.
//!
//! **From messages to text.** The messages are rendered with the GGUF's `tokenizer.chat_template`
//! ([`template`]; ChatML, with a warning, when the file has none) and tokenized without adding
//! special tokens (the template places them; a BOS is prepended only when the GGUF asks for one and
//! the template did not write it). Generation stops at a stop token (the GGUF's EOS and EOT ids,
//! plus any end-of-turn marker of the common chat formats, such as `<|im_end|>`, that is in the
//! vocabulary), at `max_tokens`, or at the end of the context.
//!
//! **Weights.** candle 0.11 has AVX2 kernels for Q4_0, Q8_0 and the k-quants but multiplies by Q4_1,
//! Q5_0 and Q5_1 weights with portable scalar code; SmolLM2-135M, whose 576-wide rows rule out the
//! 256-value k-quant blocks, ships as Q4_1. Such tensors are requantized to Q8_0 at load (same
//! 32-value blocks, so the values barely move): for about 60 MB more memory, a prompt token costs
//! a third of the CPU time and a generated one a little over half.
//!
//! **Concurrency.** The weights are loaded once. candle's `ModelWeights` is `Clone` and its tensors
//! are reference counted, so each request clones the loaded instance: the clone shares the weights
//! and owns its KV cache, and requests run side by side, each on its own blocking thread. candle's
//! CPU thread pool is one per process and runs one matrix product at a time, so concurrent requests
//! (and Whisper, also on candle) interleave their steps on the same cores rather than adding up.
//!
//! **Time to first token.** The prompt goes through the model in one batched forward pass, less
//! what a cached KV cache already holds: the instances that ran a system prompt, or a whole
//! conversation turn (prompt and answer), are kept (cloning one shares its tensors), and a prompt
//! whose tokens start with a cached sequence only runs the rest. A voice agent's system prompt is
//! the same on every turn and every session, and its next turn extends the last one, so a turn
//! usually runs only its new user message. Matching is on tokens, so a history that was edited
//! (an interrupted answer, trimmed text) simply reuses less.
//!
//! **Sampling.** Temperature 0 is greedy (argmax); otherwise temperature with nucleus (`top_p`)
//! sampling, seeded per request. A mild repetition penalty over the last tokens keeps small models
//! out of loops.
//!
//! **Streaming.** Text deltas are emitted as soon as the tokens so far decode to valid UTF-8 (a
//! character split over several byte-level tokens waits for its last byte), then `Usage`, then
//! `Done`. Dropping the stream stops generation before the next token.

mod template;

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use candle_core::quantized::tokenizer::TokenizerFromGguf;
use candle_core::quantized::{GgmlDType, QTensor, gguf_file};
use candle_core::{Device, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};
use candle_transformers::models::quantized_llama;
use colloquy_model::LlmParams;
use futures_util::StreamExt;
use tokenizers::Tokenizer;
use tokio::sync::mpsc;

use self::template::{CHATML, ChatTemplate};
use crate::llm::{ChatMessage, LlmEvent, LlmProvider, LlmRequest};
use crate::models::{ModelError, SMOLLM2_135M, models_dir};
use crate::{ProviderError, ProviderStream, TurnId};

/// End-of-turn markers of common chat formats: stop tokens when the vocabulary has them (a model
/// that writes one has ended its turn, whatever its template says).
const END_OF_TURN_MARKERS: &[&str] = &["<|im_end|>", "<|eot_id|>", "<|end|>", "<end_of_turn>", "<|endoftext|>"];

/// The repetition penalty and the window of recent tokens it looks at.
const REPEAT_PENALTY: f32 = 1.1;
const REPEAT_WINDOW: usize = 64;

/// The most token sequences whose KV cache is kept for reuse, and the most memory they take. A
/// token of SmolLM2-135M takes 45 KiB of KV cache (30 layers, 3 KV heads of 64, keys and values in
/// f32), so this is about 5,800 tokens: the last turns of a few dozen conversations.
const KV_CACHE_ENTRIES: usize = 32;
const KV_CACHE_BYTES: usize = 256 << 20;

/// Events buffered between the generating thread and the stream.
const CHANNEL_CAPACITY: usize = 64;

/// A GGUF language model, loaded once and shared by every session.
#[derive(Clone)]
pub struct LocalLlm {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LocalLlm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

struct Inner {
    path: PathBuf,
    architecture: String,
    /// The loaded model with an empty KV cache; every request runs on a clone of it.
    weights: Weights,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    /// Prepended to the prompt when the GGUF asks for a BOS and the template did not write it.
    bos: Option<(u32, String)>,
    stop_tokens: Vec<u32>,
    context_length: usize,
    kv_cache: Mutex<KvCache>,
    kv_cache_enabled: AtomicBool,
    /// Prompt tokens taken from the KV cache rather than run, since the model was loaded.
    reused_tokens: AtomicU64,
    /// Generations whose thread is running.
    active: AtomicUsize,
    seed: AtomicU64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalLlm")
            .field("path", &self.path)
            .field("architecture", &self.architecture)
            .field("context_length", &self.context_length)
            .field("stop_tokens", &self.stop_tokens)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// Model instances whose KV cache holds a known token sequence: the system prompts and the
/// conversations so far, so that a prompt that extends one of them only runs its new tokens.
struct KvCache {
    /// Most recently used first.
    entries: VecDeque<Cached>,
    /// The most tokens all entries may hold together (a sequence longer than that is not kept).
    capacity: usize,
}

/// A model instance whose KV cache holds exactly `tokens`.
struct Cached {
    tokens: Vec<u32>,
    weights: Weights,
}

impl KvCache {
    /// A clone of the instance holding the longest cached proper prefix of `tokens`, and its length.
    fn longest_prefix(&mut self, tokens: &[u32]) -> Option<(Weights, usize)> {
        let (i, _) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.tokens.len() < tokens.len() && tokens.starts_with(&e.tokens))
            .max_by_key(|(_, e)| e.tokens.len())?;
        let entry = self.entries.remove(i)?;
        let found = (entry.weights.clone(), entry.tokens.len());
        self.entries.push_front(entry);
        Some(found)
    }

    fn insert(&mut self, tokens: Vec<u32>, weights: Weights) {
        if tokens.is_empty() || self.entries.iter().any(|e| e.tokens == tokens) {
            return;
        }
        self.entries.push_front(Cached { tokens, weights });
        let mut total = 0;
        let keep = self
            .entries
            .iter()
            .take(KV_CACHE_ENTRIES)
            .take_while(|e| {
                total += e.tokens.len();
                total <= self.capacity
            })
            .count();
        self.entries.truncate(keep);
    }

    fn clear(&mut self) {
        self.entries.clear();
    }
}

/// The model of one supported architecture.
#[derive(Clone)]
enum Weights {
    Llama(quantized_llama::ModelWeights),
}

impl Weights {
    /// Reads the weights, with those of a quantization candle has no SIMD kernel for requantized
    /// (see [`requantize`]).
    fn load(content: gguf_file::Content, file: &mut File, path: &Path) -> candle_core::Result<Weights> {
        let device = Device::Cpu;
        Ok(if content.tensor_infos.values().any(|t| slow_kernel(t.ggml_dtype)) {
            let (content, mut data) = requantize(content, path)?;
            Weights::Llama(quantized_llama::ModelWeights::from_gguf(content, &mut data, &device)?)
        } else {
            Weights::Llama(quantized_llama::ModelWeights::from_gguf(content, file, &device)?)
        })
    }

    /// Runs `tokens` at positions `position..`; the logits of the last one.
    fn forward(&mut self, tokens: &[u32], position: usize) -> candle_core::Result<Tensor> {
        let input = Tensor::new(tokens, &Device::Cpu)?.unsqueeze(0)?;
        let logits = match self {
            Weights::Llama(model) => model.forward(&input, position)?,
        };
        logits.squeeze(0)
    }
}

/// Whether candle 0.11 multiplies by weights of this quantization with portable scalar code only:
/// Q4_1, Q5_0 and Q5_1 have no AVX2 kernel (Q4_0, Q8_0 and the k-quants do).
fn slow_kernel(dtype: GgmlDType) -> bool {
    matches!(dtype, GgmlDType::Q4_1 | GgmlDType::Q5_0 | GgmlDType::Q5_1)
}

/// The GGUF's tensors in memory, those with a [`slow_kernel`] requantized to Q8_0, on every core,
/// each written once into its place in one buffer. For SmolLM2-135M in Q4_1 (one core, CPU time):
/// 6 ms instead of 18 per prompt token, 13 instead of 22 per generated token.
fn requantize(content: gguf_file::Content, path: &Path) -> candle_core::Result<(gguf_file::Content, Cursor<Vec<u8>>)> {
    let mut tensors: Vec<(&String, &gguf_file::TensorInfo)> = content.tensor_infos.iter().collect();
    tensors.sort_unstable_by_key(|(name, _)| *name);
    let dtype = |info: &gguf_file::TensorInfo| {
        if slow_kernel(info.ggml_dtype) { GgmlDType::Q8_0 } else { info.ggml_dtype }
    };
    let size = |info: &gguf_file::TensorInfo| {
        let dtype = dtype(info);
        info.shape.elem_count() / dtype.block_size() * dtype.type_size()
    };
    let mut data = vec![0u8; tensors.iter().map(|(_, info)| size(info)).sum()];
    let mut infos = HashMap::new();
    let mut jobs = Vec::new();
    let (mut rest, mut offset) = (data.as_mut_slice(), 0);
    for (name, info) in tensors {
        let (place, tail) = std::mem::take(&mut rest).split_at_mut(size(info));
        rest = tail;
        infos
            .insert(name.clone(), gguf_file::TensorInfo { ggml_dtype: dtype(info), shape: info.shape.clone(), offset });
        offset += place.len() as u64;
        jobs.push((name, place));
    }
    let jobs = Mutex::new(jobs.into_iter());
    let work = || -> candle_core::Result<()> {
        let mut file = File::open(path)?;
        loop {
            let Some((name, place)) = jobs.lock().unwrap_or_else(|e| e.into_inner()).next() else { return Ok(()) };
            let mut tensor = content.tensor(&mut file, name, &Device::Cpu)?;
            if slow_kernel(tensor.dtype()) {
                tensor = QTensor::quantize(&tensor.dequantize(&Device::Cpu)?, GgmlDType::Q8_0)?;
            }
            let bytes = tensor.data()?;
            if bytes.len() != place.len() {
                candle_core::bail!("{name}: {} bytes after requantizing, {} expected", bytes.len(), place.len());
            }
            place.copy_from_slice(&bytes);
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers).map(|_| scope.spawn(work)).collect();
        handles.into_iter().try_for_each(|h| h.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
    })?;
    let content = gguf_file::Content {
        magic: content.magic,
        metadata: content.metadata,
        tensor_infos: infos,
        tensor_data_offset: 0,
    };
    Ok((content, Cursor::new(data)))
}

impl LocalLlm {
    /// The architectures (`general.architecture`) that run.
    pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama"];

    /// The file for a configured model name: an existing file path as is; otherwise `{model}` or
    /// `{model}.gguf` in [`models_dir`], with the default name `SmolLM2-135M-Instruct` standing for
    /// [`SMOLLM2_135M`]. A name that matches nothing gives the path it was expected at.
    pub fn resolve(model: &str) -> PathBuf {
        let path = Path::new(model);
        if path.is_file() {
            return path.to_owned();
        }
        let name = if model == colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL { SMOLLM2_135M } else { model };
        let dir = models_dir();
        let exact = dir.join(name);
        if exact.is_file() || name.ends_with(".gguf") {
            return exact;
        }
        dir.join(format!("{name}.gguf"))
    }

    /// Loads the GGUF at `path`: weights, tokenizer, chat template and stop tokens.
    pub fn load(path: &Path) -> Result<LocalLlm, ModelError> {
        let unusable = |problem: String| ModelError::unusable(path, problem);
        let mut file = File::open(path).map_err(|e| unusable(format!("cannot open the model: {e}")))?;
        let content = gguf_file::Content::read(&mut file).map_err(|e| unusable(format!("not a GGUF file: {e}")))?;
        let metadata = Metadata(&content);
        let architecture = metadata.string("general.architecture").unwrap_or_default();
        if !LocalLlm::SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(unusable(format!(
                "the architecture {architecture:?} is not supported (supported: {})",
                LocalLlm::SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }
        let tokenizer = load_tokenizer(&content).map_err(unusable)?;
        let token = |key: &str| {
            let id = metadata.u32(key)?;
            Some((id, tokenizer.id_to_token(id)?))
        };
        let bos = token("tokenizer.ggml.bos_token_id");
        let eos = token("tokenizer.ggml.eos_token_id");
        let source = match metadata.string("tokenizer.chat_template") {
            Some(source) => source,
            None => {
                tracing::warn!(path = %path.display(), "the GGUF has no chat template: using ChatML");
                CHATML.to_owned()
            }
        };
        let name = |t: &Option<(u32, String)>| t.as_ref().map(|(_, s)| s.clone()).unwrap_or_default();
        let template = ChatTemplate::new(source, name(&bos), name(&eos))
            .map_err(|e| unusable(format!("the chat template does not compile: {e}")))?;
        let mut stop_tokens: Vec<u32> =
            [eos.as_ref().map(|t| t.0), metadata.u32("tokenizer.ggml.eot_token_id")].into_iter().flatten().collect();
        stop_tokens.extend(END_OF_TURN_MARKERS.iter().filter_map(|marker| tokenizer.token_to_id(marker)));
        stop_tokens.sort_unstable();
        stop_tokens.dedup();
        if stop_tokens.is_empty() {
            return Err(unusable("the GGUF names no end-of-sequence token".into()));
        }
        let add_bos = metadata.bool("tokenizer.ggml.add_bos_token").unwrap_or(false);
        let hyper = |key: &str| metadata.u32(&format!("{architecture}.{key}")).map_or(1, |v| v.max(1) as usize);
        // Keys and values, in f32, of every layer's KV heads.
        let kv_bytes = hyper("block_count")
            * 2
            * hyper("attention.head_count_kv")
            * (hyper("embedding_length") / hyper("attention.head_count"))
            * 4;
        let context_length = metadata
            .u32(&format!("{architecture}.context_length"))
            .map_or(quantized_llama::MAX_SEQ_LEN, |n| n as usize)
            .min(quantized_llama::MAX_SEQ_LEN);
        let weights =
            Weights::load(content, &mut file, path).map_err(|e| unusable(format!("the weights do not load: {e}")))?;
        let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        Ok(LocalLlm {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                architecture,
                weights,
                tokenizer,
                template,
                bos: if add_bos { bos } else { None },
                stop_tokens,
                context_length,
                kv_cache: Mutex::new(KvCache { entries: VecDeque::new(), capacity: KV_CACHE_BYTES / kv_bytes.max(1) }),
                kv_cache_enabled: AtomicBool::new(true),
                reused_tokens: AtomicU64::new(0),
                active: AtomicUsize::new(0),
                seed: AtomicU64::new(seed as u64),
            }),
        })
    }

    /// The file the model was loaded from.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// `general.architecture`, e.g. `llama`.
    pub fn architecture(&self) -> &str {
        &self.inner.architecture
    }

    /// The most tokens a prompt and its answer can hold together: the GGUF's context length, at most
    /// 4096 (candle's llama precomputes its rotary embeddings that far).
    pub fn context_length(&self) -> usize {
        self.inner.context_length
    }

    /// Turns the reuse of KV caches across requests (system prompts, conversations so far) on (the
    /// default) or off, e.g. to measure it. Turning it off also forgets what was cached.
    pub fn set_kv_cache(&self, enabled: bool) {
        self.inner.kv_cache_enabled.store(enabled, Ordering::SeqCst);
        if !enabled {
            self.inner.kv_cache().clear();
        }
    }

    /// The prompt tokens taken from the KV cache instead of being run, since the model was loaded.
    pub fn reused_prompt_tokens(&self) -> u64 {
        self.inner.reused_tokens.load(Ordering::SeqCst)
    }

    /// The prompt text the model is given for `messages`: the chat template rendered, ending
    /// where the assistant's answer begins.
    pub fn render(&self, messages: &[ChatMessage]) -> Result<String, ProviderError> {
        self.inner.render(messages)
    }

    /// How many answers are being generated right now (a dropped stream stops counting once its
    /// thread has stopped).
    pub fn active_generations(&self) -> usize {
        self.inner.active.load(Ordering::SeqCst)
    }
}

/// Typed reads of GGUF metadata.
struct Metadata<'a>(&'a gguf_file::Content);

impl Metadata<'_> {
    fn string(&self, key: &str) -> Option<String> {
        self.0.metadata.get(key)?.to_string().ok().cloned()
    }

    fn u32(&self, key: &str) -> Option<u32> {
        let value = self.0.metadata.get(key)?;
        value.to_u32().ok().or_else(|| value.to_i32().ok().and_then(|v| u32::try_from(v).ok()))
    }

    fn bool(&self, key: &str) -> Option<bool> {
        self.0.metadata.get(key)?.to_bool().ok()
    }
}

/// candle's tokenizer from GGUF metadata, with the pre-tokenizer llama.cpp uses for the GGUF's
/// `tokenizer.ggml.pre` where candle's generic choice differs: candle gives every unknown `pre` the
/// GPT-2 byte-level split *with* a space added in front of each text, which turns `system` after
/// `<|im_start|>` into `Ġsystem`; llama.cpp adds that space only when `add_space_prefix` says so,
/// and SmolLM also splits digits one by one.
fn load_tokenizer(content: &gguf_file::Content) -> Result<Tokenizer, String> {
    use tokenizers::pre_tokenizers::byte_level::ByteLevel;
    use tokenizers::pre_tokenizers::digits::Digits;
    use tokenizers::pre_tokenizers::sequence::Sequence;

    let metadata = Metadata(content);
    let kind = metadata.string("tokenizer.ggml.model").unwrap_or_default();
    let mut tokenizer = Tokenizer::from_gguf(content).map_err(|e| {
        if kind == "llama" {
            "the tokenizer is SentencePiece (`llama`), which candle cannot build from GGUF (only byte-level BPE, \
             `gpt2`, is supported)"
                .to_owned()
        } else {
            format!("the tokenizer does not load: {e}")
        }
    })?;
    let pre = metadata.string("tokenizer.ggml.pre").unwrap_or_default();
    if !matches!(pre.as_str(), "qwen2" | "smaug-bpe" | "lfm2" | "llama3") {
        let add_space_prefix = metadata.bool("tokenizer.ggml.add_space_prefix").unwrap_or(false);
        let byte_level = ByteLevel::new(add_space_prefix, true, true);
        if pre == "smollm" {
            tokenizer.with_pre_tokenizer(Some(Sequence::new(vec![Digits::new(true).into(), byte_level.into()])));
        } else {
            tokenizer.with_pre_tokenizer(Some(byte_level));
        }
    }
    Ok(tokenizer)
}

/// A prompt ready to run: its tokens, and how many of them are the system prefix worth caching.
struct Prompt {
    tokens: Vec<u32>,
    prefix: usize,
}

impl Inner {
    fn encode(&self, text: &str) -> Result<Vec<u32>, ProviderError> {
        let encoding = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| ProviderError::BadResponse(format!("the prompt does not tokenize: {e}")))?;
        let mut tokens = encoding.get_ids().to_vec();
        if let Some((id, token)) = &self.bos
            && !text.starts_with(token.as_str())
        {
            tokens.insert(0, *id);
        }
        Ok(tokens)
    }

    fn render(&self, messages: &[ChatMessage]) -> Result<String, ProviderError> {
        self.template
            .render(messages, true)
            .map_err(|e| ProviderError::BadResponse(format!("the chat template failed: {e}")))
    }

    fn prompt(&self, messages: &[ChatMessage]) -> Result<Prompt, ProviderError> {
        if messages.is_empty() {
            return Err(ProviderError::BadResponse("the request has no messages".into()));
        }
        let text = self.render(messages)?;
        let tokens = self.encode(&text)?;
        if tokens.len() >= self.context_length {
            return Err(ProviderError::BadResponse(format!(
                "the prompt is {} tokens, too long for the model's context of {} tokens (prompt and answer together)",
                tokens.len(),
                self.context_length
            )));
        }
        // The leading system messages rendered alone, if they are a token prefix of the prompt.
        let systems = messages.iter().take_while(|m| m.role == colloquy_model::PromptRole::System).count();
        let prefix = (systems > 0)
            .then(|| self.template.render(&messages[..systems], false).ok())
            .flatten()
            .filter(|prefix| !prefix.is_empty() && text.starts_with(prefix.as_str()))
            .and_then(|prefix| self.encode(&prefix).ok())
            .filter(|prefix| prefix.len() < tokens.len() && tokens.starts_with(prefix))
            .map_or(0, |prefix| prefix.len());
        Ok(Prompt { tokens, prefix })
    }

    fn kv_cache(&self) -> std::sync::MutexGuard<'_, KvCache> {
        self.kv_cache.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A model instance whose KV cache holds the first `n` tokens of the prompt, and `n`: the
    /// longest cached prefix of the prompt, extended to the system prefix (which is then cached
    /// for the next conversations) when it is shorter.
    fn instance(&self, prompt: &Prompt) -> candle_core::Result<(Weights, usize)> {
        if !self.kv_cache_enabled.load(Ordering::SeqCst) {
            return Ok((self.weights.clone(), 0));
        }
        let cached = self.kv_cache().longest_prefix(&prompt.tokens);
        let (mut weights, mut position) = cached.unwrap_or_else(|| (self.weights.clone(), 0));
        self.reused_tokens.fetch_add(position as u64, Ordering::SeqCst);
        if prompt.prefix > position {
            weights.forward(&prompt.tokens[position..prompt.prefix], position)?;
            position = prompt.prefix;
            self.kv_cache().insert(prompt.tokens[..position].to_vec(), weights.clone());
        }
        Ok((weights, position))
    }

    /// Generates the answer to `request`, sending its events to `tx`; returns early, without an
    /// error, when the receiver is gone.
    fn generate(
        &self,
        request: LlmRequest,
        tx: &mpsc::Sender<Result<LlmEvent, ProviderError>>,
    ) -> Result<(), ProviderError> {
        let turn = request.turn;
        if !request.tools.is_none() {
            // The HTTP edge refuses an agent with tools on the local model; this is the last guard.
            return Err(ProviderError::BadResponse("the local model cannot call tools".into()));
        }
        let failed = |e: candle_core::Error| ProviderError::BadResponse(format!("the local model failed: {e}"));
        let prompt = self.prompt(&request.messages)?;
        let (mut weights, cached) = self.instance(&prompt).map_err(failed)?;
        if tx.is_closed() {
            return Ok(());
        }
        let mut logits = weights.forward(&prompt.tokens[cached..], cached).map_err(failed)?;
        // The tokens in the KV cache: the prompt, then each answer token once it has been run.
        let mut seen = prompt.tokens.clone();
        let limit = (request.params.max_tokens as usize).min(self.context_length - seen.len());
        let mut sampler = sampler(&request.params, self.seed.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed));
        let mut text = TextStream::default();
        let mut completion: Vec<u32> = Vec::new();
        let send = |event: LlmEvent| tx.blocking_send(Ok(event)).is_ok();
        while completion.len() < limit {
            let recent = &completion[completion.len().saturating_sub(REPEAT_WINDOW)..];
            let logits_penalized = if recent.is_empty() {
                logits
            } else {
                candle_transformers::utils::apply_repeat_penalty(&logits, REPEAT_PENALTY, recent).map_err(failed)?
            };
            let token = sampler.sample(&logits_penalized).map_err(failed)?;
            if self.stop_tokens.contains(&token) {
                break;
            }
            completion.push(token);
            if let Some(delta) = text.push(token, |ids| self.decode(ids))
                && !send(LlmEvent::Delta { turn, text: delta })
            {
                return Ok(());
            }
            if completion.len() == limit {
                break;
            }
            if tx.is_closed() {
                return Ok(());
            }
            logits = weights.forward(&[token], seen.len()).map_err(failed)?;
            seen.push(token);
        }
        if self.kv_cache_enabled.load(Ordering::SeqCst) {
            self.kv_cache().insert(seen, weights);
        }
        if let Some(rest) = text.finish(|ids| self.decode(ids))
            && !send(LlmEvent::Delta { turn, text: rest })
        {
            return Ok(());
        }
        let usage = LlmEvent::Usage {
            turn,
            prompt_tokens: prompt.tokens.len() as u32,
            completion_tokens: completion.len() as u32,
        };
        let _ = send(usage) && send(LlmEvent::Done { turn });
        Ok(())
    }

    fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, true).unwrap_or_default()
    }
}

fn sampler(params: &LlmParams, seed: u64) -> LogitsProcessor {
    let temperature = f64::from(params.temperature);
    let top_p = f64::from(params.top_p);
    let sampling = if temperature <= 0.0 {
        Sampling::ArgMax
    } else if top_p > 0.0 && top_p < 1.0 {
        Sampling::TopP { p: top_p, temperature }
    } else {
        Sampling::All { temperature }
    };
    LogitsProcessor::from_sampling(seed, sampling)
}

/// Incremental detokenization: the text of all the tokens so far, less what was already emitted,
/// held back while it ends in an incomplete UTF-8 sequence (which decodes to U+FFFD).
#[derive(Debug, Default)]
struct TextStream {
    ids: Vec<u32>,
    emitted: usize,
}

impl TextStream {
    fn push(&mut self, id: u32, decode: impl Fn(&[u32]) -> String) -> Option<String> {
        self.ids.push(id);
        let text = decode(&self.ids);
        if text.ends_with(char::REPLACEMENT_CHARACTER) {
            return None;
        }
        self.take(text)
    }

    /// Whatever is left at the end, incomplete sequences included.
    fn finish(&mut self, decode: impl Fn(&[u32]) -> String) -> Option<String> {
        let text = decode(&self.ids);
        self.take(text)
    }

    fn take(&mut self, text: String) -> Option<String> {
        // Decoding more tokens only appends to byte-level text; should a decoder ever rewrite what
        // was emitted, nothing is emitted until the text grows past it.
        let delta = text.get(self.emitted..).filter(|d| !d.is_empty())?;
        let delta = delta.to_owned();
        self.emitted = text.len();
        Some(delta)
    }
}

/// Counts a running generation for as long as it lives.
struct Active<'a>(&'a AtomicUsize);

impl<'a> Active<'a> {
    fn new(count: &'a AtomicUsize) -> Active<'a> {
        count.fetch_add(1, Ordering::SeqCst);
        Active(count)
    }
}

impl Drop for Active<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl LlmProvider for LocalLlm {
    fn chat(&self, request: LlmRequest) -> ProviderStream<LlmEvent> {
        let inner = Arc::clone(&self.inner);
        let turn: TurnId = request.turn;
        let start = async move {
            let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
            tokio::task::spawn_blocking(move || {
                let _active = Active::new(&inner.active);
                if let Err(e) = inner.generate(request, &tx) {
                    let _ = tx.blocking_send(Err(e));
                }
            });
            rx
        };
        futures_util::stream::once(start)
            .flat_map(move |rx| {
                futures_util::stream::unfold((rx, false), move |(mut rx, finished)| async move {
                    if finished {
                        return None;
                    }
                    match rx.recv().await {
                        Some(Ok(event)) => {
                            let done = matches!(event, LlmEvent::Done { .. });
                            Some((Ok(event), (rx, done)))
                        }
                        Some(Err(e)) => Some((Err(e), (rx, true))),
                        None => Some((
                            Err(ProviderError::CutStream(format!(
                                "the local model stopped before the end of turn {turn:?}"
                            ))),
                            (rx, true),
                        )),
                    }
                })
            })
            .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A byte-level decoder: each id is one byte, decoded lossily like a byte-level BPE decoder.
    fn bytes(ids: &[u32]) -> String {
        String::from_utf8_lossy(&ids.iter().map(|&b| b as u8).collect::<Vec<_>>()).into_owned()
    }

    #[test]
    fn multi_byte_characters_are_emitted_once_complete() {
        let text = "añ日🎉!";
        let mut stream = TextStream::default();
        let mut deltas = Vec::new();
        for b in text.bytes() {
            deltas.extend(stream.push(u32::from(b), bytes));
        }
        assert_eq!(deltas, ["a", "ñ", "日", "🎉", "!"]);
        assert_eq!(stream.finish(bytes), None);
    }

    #[test]
    fn an_incomplete_tail_is_flushed_at_the_end() {
        let mut stream = TextStream::default();
        assert_eq!(stream.push(u32::from(b'a'), bytes).as_deref(), Some("a"));
        assert_eq!(stream.push(0xE6, bytes), None);
        assert_eq!(stream.finish(bytes).as_deref(), Some("\u{FFFD}"));
    }

    #[test]
    fn temperature_zero_is_greedy() {
        let logits = Tensor::new(&[0.1f32, 3.0, 2.9, -1.0], &Device::Cpu).unwrap();
        let params = LlmParams { temperature: 0.0, top_p: 0.5, max_tokens: 1 };
        for seed in 0..20 {
            assert_eq!(sampler(&params, seed).sample(&logits).unwrap(), 1);
        }
        // With a temperature, the runner-up comes up for some seed.
        let params = LlmParams { temperature: 1.0, top_p: 1.0, max_tokens: 1 };
        assert!((0..50).any(|seed| sampler(&params, seed).sample(&logits).unwrap() == 2));
    }

    #[test]
    fn resolve_maps_the_default_name_and_keeps_paths() {
        let dir = models_dir();
        assert_eq!(LocalLlm::resolve(colloquy_model::LlmProvider::DEFAULT_LOCAL_MODEL), dir.join(SMOLLM2_135M));
        assert_eq!(LocalLlm::resolve("Other"), dir.join("Other.gguf"));
        assert_eq!(LocalLlm::resolve("other.gguf"), dir.join("other.gguf"));
        let file = std::env::current_exe().unwrap();
        assert_eq!(LocalLlm::resolve(file.to_str().unwrap()), file);
    }
}
