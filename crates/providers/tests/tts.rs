//! Piper TTS with espeak-ng phonemes: real speech comes out (Silero VAD agrees), sentence by
//! sentence, at the requested speed. Needs the models (`scripts/fetch-models`) and espeak-ng.

use std::time::Instant;

use colloquy_providers::TurnId;
use colloquy_providers::embedded::{OnnxRuntime, PiperTts, SileroVad};
use colloquy_providers::models::{ONNXRUNTIME_LIBRARY, PIPER_JOE, SILERO_VAD, models_dir};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::vad::{VAD_FRAME, VadModel};
use futures_util::StreamExt;

fn runtime() -> OnnxRuntime {
    OnnxRuntime::load(&models_dir().join(ONNXRUNTIME_LIBRARY)).expect("ONNX Runtime loads (run scripts/fetch-models)")
}

async fn speak(tts: &PiperTts, text: &str, speed: f32) -> Vec<i16> {
    let request = TtsRequest { turn: TurnId(1), text: text.into(), voice: "en_US-joe-medium".into(), speed };
    let chunks: Vec<_> = tts.synthesize(request).collect().await;
    chunks
        .into_iter()
        .flat_map(|c| {
            let c = c.unwrap();
            assert_eq!((c.turn, c.sample_rate), (TurnId(1), 22_050));
            c.pcm
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piper_speaks_sentences_that_a_vad_hears_as_speech() {
    let runtime = runtime();
    let started = Instant::now();
    let tts = PiperTts::load(&runtime, &models_dir().join(PIPER_JOE)).expect("the Piper voice loads");
    eprintln!("Piper loaded in {:?}", started.elapsed());
    let vad = SileroVad::load(&runtime, &models_dir().join(SILERO_VAD)).unwrap();
    for text in
        ["Hello there, how can I help you today?", "The capital of France is Paris.", "Wait, what did you just say?"]
    {
        let pcm = speak(&tts, text, 1.0).await;
        let seconds = pcm.len() as f64 / 22_050.0;
        // Roughly 10 to 25 characters a second, as people speak.
        let per_second = text.len() as f64 / seconds;
        assert!((8.0..30.0).contains(&per_second), "{text:?}: {seconds:.2} s");
        let samples: Vec<f32> = colloquy_rtc::audio::resample(
            &pcm.iter().map(|s| f32::from(*s) / 32768.0).collect::<Vec<_>>(),
            22_050,
            16_000,
        );
        let mut session = vad.session();
        let frames: Vec<&[f32]> = samples.chunks_exact(VAD_FRAME).collect();
        let speech = frames.iter().filter(|f| session.probability((**f).try_into().unwrap()).unwrap() > 0.5).count();
        let share = speech as f64 / frames.len() as f64;
        assert!(share > 0.5, "{text:?}: VAD hears speech in only {share:.2} of frames");
    }
    // Faster speech is shorter.
    let normal = speak(&tts, "This sentence is spoken at two speeds.", 1.0).await.len();
    let fast = speak(&tts, "This sentence is spoken at two speeds.", 1.6).await.len();
    assert!((fast as f64) < normal as f64 * 0.8, "fast {fast} vs normal {normal} samples");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_espeak_process_answers_sentence_after_sentence_in_order() {
    let tts = PiperTts::load(&runtime(), &models_dir().join(PIPER_JOE)).unwrap();
    // Many short requests at once from several tasks: each gets its own audio, none mixes.
    let texts = ["Yes.", "No, not at all.", "Maybe tomorrow?", "Absolutely!"];
    let mut handles = Vec::new();
    for round in 0..3 {
        for text in texts {
            let tts = tts.clone();
            handles.push(tokio::spawn(async move { (round, text, speak(&tts, text, 1.0).await.len()) }));
        }
    }
    let mut lengths: std::collections::HashMap<&str, Vec<usize>> = Default::default();
    for handle in handles {
        let (_, text, len) = handle.await.unwrap();
        lengths.entry(text).or_default().push(len);
    }
    // The same text always gives about the same length (VITS adds a little noise), and "Yes." is
    // shorter than "No, not at all.".
    for (text, lens) in &lengths {
        let (min, max) = (*lens.iter().min().unwrap(), *lens.iter().max().unwrap());
        assert!((max - min) as f64 <= max as f64 * 0.25, "{text:?}: {lens:?}");
    }
    assert!(lengths["Yes."][0] < lengths["No, not at all."][0]);
}
