//! Which providers an agent talks with: the embedded models, loaded once per process and shared by
//! every agent, or OpenAI-compatible servers and speech vendors, one client per agent; each chained
//! to the fallbacks its configuration lists.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use colloquy_model::{
    AgentSpec, AsrProvider as AsrChoice, LlmProvider as LlmChoice, LocalAsrModel, Tts, TtsProvider as TtsChoice,
};
use colloquy_providers::asr::AsrProvider;
use colloquy_providers::embedded::{LocalLlm, OnnxRuntime, PiperTts, SileroVad, WhisperAsr};
use colloquy_providers::fallback::{FallbackAsr, FallbackTts, TtsLink};
use colloquy_providers::llm::LlmProvider;
use colloquy_providers::models::{
    ModelError, ONNXRUNTIME_LIBRARY, PIPER_JOE, SILERO_VAD, SMOLLM2_135M, WHISPER_TINY_EN, models_dir,
};
use colloquy_providers::remote::{RemoteAsr, RemoteLlm, RemoteTts};
use colloquy_providers::tts::TtsProvider;
use colloquy_providers::vad::VadModel;
use colloquy_providers::vendors;

/// The providers of one agent.
#[derive(Clone, Debug)]
pub struct Stack {
    pub vad: Arc<dyn VadModel>,
    pub asr: Arc<dyn AsrProvider>,
    pub llm: Arc<dyn LlmProvider>,
    pub tts: Arc<dyn TtsProvider>,
}

/// The embedded models. The defaults (Silero, Whisper tiny.en, SmolLM2, Piper) are loaded by
/// [`EmbeddedModels::load_defaults`]; other local models (Whisper base, another GGUF) on first use.
#[derive(Debug)]
pub struct EmbeddedModels {
    dir: PathBuf,
    runtime: OnnxRuntime,
    vad: Arc<SileroVad>,
    tts: Arc<PiperTts>,
    asr: Mutex<HashMap<LocalAsrModel, Arc<WhisperAsr>>>,
    /// By resolved file path.
    llm: Mutex<HashMap<PathBuf, Arc<LocalLlm>>>,
}

impl EmbeddedModels {
    /// The default model files, relative to the model directory.
    pub fn default_files() -> Vec<String> {
        let mut files = vec![ONNXRUNTIME_LIBRARY.to_owned(), SILERO_VAD.to_owned(), PIPER_JOE.to_owned()];
        files.push(format!("{PIPER_JOE}.json"));
        files.extend([".bin", ".config.json", ".vocabulary.txt"].map(|ext| format!("{WHISPER_TINY_EN}{ext}")));
        files.push(SMOLLM2_135M.to_owned());
        files
    }

    /// Checks (quickly: presence only) that the default model files are there, so a server without
    /// them fails at start-up with the command that fetches them, rather than at its first agent.
    pub fn check_files() -> Result<(), ModelError> {
        let dir = models_dir();
        for file in Self::default_files() {
            let path = dir.join(&file);
            if !path.is_file() {
                return Err(ModelError::unusable(&path, "missing"));
            }
        }
        Ok(())
    }

    /// Loads the default models from the model directory (`$COLLOQUY_MODELS`). A missing or broken
    /// file is an error whose message names `scripts/fetch-models`.
    pub fn load_defaults() -> Result<EmbeddedModels, ModelError> {
        let dir = models_dir();
        let runtime = OnnxRuntime::load(&dir.join(ONNXRUNTIME_LIBRARY))?;
        let vad = Arc::new(SileroVad::load(&runtime, &dir.join(SILERO_VAD))?);
        let tts = Arc::new(PiperTts::load(&runtime, &dir.join(PIPER_JOE))?);
        let models =
            EmbeddedModels { dir, runtime, vad, tts, asr: Mutex::new(HashMap::new()), llm: Mutex::new(HashMap::new()) };
        models.asr(LocalAsrModel::WhisperTinyEn)?;
        models.llm(LlmChoice::DEFAULT_LOCAL_MODEL)?;
        Ok(models)
    }

    fn asr(&self, model: LocalAsrModel) -> Result<Arc<WhisperAsr>, ModelError> {
        if let Some(asr) = self.asr.lock().expect("lock").get(&model) {
            return Ok(Arc::clone(asr));
        }
        // Loaded outside the lock: two agents asking at once load it twice, which is rare and harmless.
        let asr = Arc::new(WhisperAsr::load(&self.dir, model)?);
        Ok(Arc::clone(self.asr.lock().expect("lock").entry(model).or_insert(asr)))
    }

    fn llm(&self, model: &str) -> Result<Arc<LocalLlm>, ModelError> {
        let path = LocalLlm::resolve(model);
        if let Some(llm) = self.llm.lock().expect("lock").get(&path) {
            return Ok(Arc::clone(llm));
        }
        let llm = Arc::new(LocalLlm::load(&path)?);
        Ok(Arc::clone(self.llm.lock().expect("lock").entry(path).or_insert(llm)))
    }

    /// The ONNX Runtime the models run on.
    pub fn onnx(&self) -> &OnnxRuntime {
        &self.runtime
    }

    /// The providers `spec` asks for, each chained to its fallbacks. Fails with a sentence for the
    /// API caller.
    pub fn stack(&self, spec: &AgentSpec) -> Result<Stack, String> {
        let mut asr = vec![self.asr_provider(&spec.asr.provider)?];
        for fallback in &spec.asr.fallback {
            asr.push(self.asr_provider(fallback)?);
        }
        let asr: Arc<dyn AsrProvider> = match asr.len() {
            1 => asr.remove(0),
            _ => Arc::new(FallbackAsr::new(asr)),
        };
        let llm: Arc<dyn LlmProvider> = match &spec.llm.provider {
            LlmChoice::Local { model } => self.llm(model).map_err(|e| e.to_string())?,
            LlmChoice::OpenAiCompatible(endpoint) => {
                Arc::new(RemoteLlm::new(endpoint.clone()).map_err(|e| format!("llm: {e}"))?)
            }
        };
        let mut links =
            vec![TtsLink { provider: self.tts_provider(&spec.tts.provider, &spec.tts.voice)?, voice: None }];
        for fallback in &spec.tts.fallback {
            let provider = self.tts_provider(&fallback.provider, &fallback.voice)?;
            links.push(TtsLink { provider, voice: Some(fallback.voice.clone()) });
        }
        // Without fallbacks, a remote voice that fails has its failure message said by the
        // embedded one.
        let failover = (links.len() == 1 && spec.tts.provider != TtsChoice::Local)
            .then(|| TtsLink { provider: self.tts.clone(), voice: Some(Tts::DEFAULT_LOCAL_VOICE.to_owned()) });
        let tts: Arc<dyn TtsProvider> = match (links.len(), failover) {
            (1, None) => links.remove(0).provider,
            (_, failover) => Arc::new(FallbackTts::new(links, failover)),
        };
        Ok(Stack { vad: self.vad.clone(), asr, llm, tts })
    }

    fn asr_provider(&self, choice: &AsrChoice) -> Result<Arc<dyn AsrProvider>, String> {
        Ok(match choice {
            AsrChoice::Local { model } => self.asr(*model).map_err(|e| e.to_string())?,
            AsrChoice::OpenAiCompatible(endpoint) => {
                Arc::new(RemoteAsr::new(endpoint.clone()).map_err(|e| format!("asr: {e}"))?)
            }
            AsrChoice::Vendor(choice) => vendors::asr(choice).map_err(|e| format!("asr: {e}"))?,
        })
    }

    fn tts_provider(&self, choice: &TtsChoice, voice: &str) -> Result<Arc<dyn TtsProvider>, String> {
        Ok(match choice {
            TtsChoice::Local if voice == Tts::DEFAULT_LOCAL_VOICE => self.tts.clone(),
            TtsChoice::Local => return Err(format!("tts: no local voice {voice:?}")),
            TtsChoice::OpenAiCompatible(endpoint) => {
                Arc::new(RemoteTts::new(endpoint.clone()).map_err(|e| format!("tts: {e}"))?)
            }
            TtsChoice::Vendor(choice) => vendors::tts(choice).map_err(|e| format!("tts: {e}"))?,
        })
    }
}
