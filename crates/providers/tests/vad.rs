//! Silero VAD on real recordings (Debian's pocketsphinx-testdata LibriVox clips): speech frames and
//! silence or noise frames are told apart. Needs the models (`scripts/fetch-models`) and the
//! package, which `scripts/test` installs.

use std::path::Path;

use colloquy_providers::embedded::{OnnxRuntime, SileroVad};
use colloquy_providers::models::{ONNXRUNTIME_LIBRARY, SILERO_VAD, models_dir};
use colloquy_providers::vad::{VAD_FRAME, VadModel};

const LIBRIVOX: &str = "/usr/share/pocketsphinx/test/data/librivox";

fn load() -> SileroVad {
    let dir = models_dir();
    let runtime =
        OnnxRuntime::load(&dir.join(ONNXRUNTIME_LIBRARY)).expect("ONNX Runtime loads (run scripts/fetch-models)");
    SileroVad::load(&runtime, &dir.join(SILERO_VAD)).expect("Silero loads")
}

fn read_16k(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{}: {e} (apt-get install pocketsphinx-testdata)", path.display()));
    assert_eq!((reader.spec().sample_rate, reader.spec().channels), (16_000, 1));
    reader.samples::<i16>().map(|s| f32::from(s.unwrap()) / 32768.0).collect()
}

/// The share of frames the model calls speech (probability above 0.5).
fn speech_share(vad: &SileroVad, samples: &[f32]) -> f64 {
    let mut session = vad.session();
    let frames: Vec<&[f32]> = samples.chunks_exact(VAD_FRAME).collect();
    let speech = frames.iter().filter(|f| session.probability((**f).try_into().unwrap()).unwrap() > 0.5).count();
    speech as f64 / frames.len() as f64
}

#[test]
fn speech_and_silence_or_noise_are_told_apart() {
    let vad = load();
    let mut clips = 0;
    for entry in std::fs::read_dir(LIBRIVOX).expect("pocketsphinx-testdata is installed") {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "wav") {
            continue;
        }
        let samples = read_16k(&path);
        let share = speech_share(&vad, &samples);
        // Read speech with short pauses: most frames are speech.
        assert!(share > 0.6, "{}: only {share:.2} of frames called speech", path.display());
        clips += 1;
    }
    assert!(clips >= 5, "found {clips} clips");

    // Digital silence, a quiet hiss, and a loud hum are not speech.
    let silence = vec![0.0f32; 16_000 * 3];
    let mut seed = 12345u32;
    let hiss: Vec<f32> = (0..16_000 * 3)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            ((seed >> 16) as f32 / 32768.0 - 1.0) * 0.02
        })
        .collect();
    let hum: Vec<f32> =
        (0..16_000 * 3).map(|i| 0.3 * (i as f32 * 50.0 * std::f32::consts::TAU / 16_000.0).sin()).collect();
    for (name, samples) in [("silence", &silence), ("hiss", &hiss), ("hum", &hum)] {
        let share = speech_share(&vad, samples);
        assert!(share < 0.05, "{name}: {share:.2} of frames called speech");
    }
}

#[test]
fn sessions_keep_their_own_state() {
    let vad = load();
    let speech = read_16k(&Path::new(LIBRIVOX).join("sense_and_sensibility_01_austen_64kb-0870.wav"));
    // Two sessions fed the same audio, interleaved with a third fed silence, agree frame by frame.
    let (mut a, mut b, mut quiet) = (vad.session(), vad.session(), vad.session());
    let silence = [0.0f32; VAD_FRAME];
    for frame in speech.chunks_exact(VAD_FRAME).take(200) {
        let frame: &[f32; VAD_FRAME] = frame.try_into().unwrap();
        let pa = a.probability(frame).unwrap();
        quiet.probability(&silence).unwrap();
        let pb = b.probability(frame).unwrap();
        assert!((pa - pb).abs() < 1e-6, "{pa} vs {pb}");
    }
    a.reset();
    let fresh = vad.session().probability(&silence).unwrap();
    assert!((a.probability(&silence).unwrap() - fresh).abs() < 1e-6);
}
