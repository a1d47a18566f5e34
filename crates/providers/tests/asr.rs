//! Whisper speech recognition, in process: LibriVox clips (Debian's pocketsphinx test data) and
//! Piper's speech come back with a low word error rate, whole or streamed; dropping the stream
//! stops the work. Needs the models (`scripts/fetch-models`), espeak-ng and pocketsphinx-testdata.
//!
//! The tests take turns (one lock) so their timings are not each other's, and share one loaded
//! tiny.en model.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use colloquy_model::LocalAsrModel;
use colloquy_providers::asr::{AsrEvent, AsrProvider, AsrRequest};
use colloquy_providers::embedded::{OnnxRuntime, PiperTts, WhisperAsr};
use colloquy_providers::models::{ONNXRUNTIME_LIBRARY, PIPER_JOE, models_dir};
use colloquy_providers::tts::{TtsProvider, TtsRequest};
use colloquy_providers::wer::{corpus_word_error_rate, word_error_rate};
use colloquy_providers::{ProviderError, TurnId};
use futures_util::StreamExt;
use tokio::sync::{Mutex, mpsc};

const LIBRIVOX: &str = "/usr/share/pocketsphinx/test/data/librivox";

/// The tests take turns: `LOCK.blocking_lock()` in plain tests, `LOCK.lock().await` in async ones.
static LOCK: Mutex<()> = Mutex::const_new(());

/// Resident memory of this process, from /proc.
fn resident_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// CPU time this process has used (user + system), from /proc.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    // The fields after the command name (which is in parentheses): utime and stime are 14 and 15,
    // in clock ticks (USER_HZ, 100 a second on Linux).
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

fn tiny() -> &'static WhisperAsr {
    static TINY: OnceLock<WhisperAsr> = OnceLock::new();
    TINY.get_or_init(|| {
        let before = resident_mib();
        let started = Instant::now();
        let asr = WhisperAsr::load(&models_dir(), LocalAsrModel::WhisperTinyEn)
            .expect("whisper-tiny.en loads (run scripts/fetch-models)");
        eprintln!(
            "whisper-tiny.en loaded in {:?}, resident memory +{:.0} MiB",
            started.elapsed(),
            resident_mib() - before
        );
        asr
    })
}

/// The LibriVox clips with their reference transcripts, from the `transcription` file
/// (`<s> text </s> (file id)` a line).
fn librivox() -> Vec<(PathBuf, String)> {
    let text = std::fs::read_to_string(Path::new(LIBRIVOX).join("transcription"))
        .expect("pocketsphinx-testdata is installed (apt-get install pocketsphinx-testdata)");
    let clips: Vec<_> = text
        .lines()
        .filter_map(|line| {
            let (words, id) = line.rsplit_once(" (")?;
            let id = id.trim_end().strip_suffix(')')?;
            let words: Vec<&str> = words.split_whitespace().filter(|w| !matches!(*w, "<s>" | "</s>")).collect();
            Some((Path::new(LIBRIVOX).join(format!("{id}.wav")), words.join(" ")))
        })
        .collect();
    assert_eq!(clips.len(), 5, "{text}");
    clips
}

fn read_16k(path: &Path) -> Vec<f32> {
    let (samples, rate) = colloquy_rtc::audio::read_wav(path).unwrap();
    colloquy_rtc::audio::resample(&samples, rate, 16_000)
}

/// Sends `samples` in 20 ms pieces, `speed` times faster than real time, then hangs up; the
/// instant it hung up.
async fn feed(samples: Vec<f32>, audio: mpsc::Sender<Vec<f32>>, speed: f64) -> Instant {
    let started = tokio::time::Instant::now();
    for (i, piece) in samples.chunks(320).enumerate() {
        tokio::time::sleep_until(started + Duration::from_secs_f64(i as f64 * 0.02 / speed)).await;
        if audio.send(piece.to_vec()).await.is_err() {
            break;
        }
    }
    tokio::time::sleep_until(started + Duration::from_secs_f64(samples.len() as f64 / 16_000.0 / speed)).await;
    Instant::now()
}

#[test]
fn librivox_clips_come_back_with_a_low_word_error_rate() {
    let _turn = LOCK.blocking_lock();
    let asr = tiny();
    let mut pairs = Vec::new();
    let (mut audio_seconds, mut compute) = (0.0, Duration::ZERO);
    for (path, reference) in librivox() {
        let samples = read_16k(&path);
        let started = Instant::now();
        let text = asr.transcribe_blocking(&samples, "en").unwrap();
        let took = started.elapsed();
        let seconds = samples.len() as f64 / 16_000.0;
        eprintln!(
            "{}: {seconds:.2} s in {took:.2?} (RTF {:.3}), WER {:.3}: {text:?}",
            path.file_stem().unwrap().to_string_lossy(),
            took.as_secs_f64() / seconds,
            word_error_rate(&reference, &text)
        );
        audio_seconds += seconds;
        compute += took;
        pairs.push((reference, text));
    }
    let wer = corpus_word_error_rate(&pairs);
    eprintln!(
        "LibriVox: corpus WER {wer:.3}, {audio_seconds:.1} s of audio in {compute:.2?} (RTF {:.3})",
        compute.as_secs_f64() / audio_seconds
    );
    assert!(wer <= 0.10, "corpus WER {wer:.3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_gives_partials_then_the_same_final_soon_after_the_audio_ends() {
    let _turn = LOCK.lock().await;
    let asr = tiny();
    let (path, reference) = librivox().into_iter().find(|(p, _)| p.to_string_lossy().contains("0880")).unwrap();
    let samples = read_16k(&path);
    let blocking = asr.transcribe_blocking(&samples, "en").unwrap();

    let (audio, receiver) = mpsc::channel(64);
    let mut stream = asr.transcribe(AsrRequest { turn: TurnId(7), language: "en".into(), audio: receiver });
    // In real time, as a caller would.
    let feeder = tokio::spawn(feed(samples.clone(), audio, 1.0));
    let mut partials = Vec::new();
    let mut last = None;
    while let Some(event) = stream.next().await {
        match event.unwrap() {
            AsrEvent::Partial { turn, text } => {
                assert_eq!(turn, TurnId(7));
                assert!(last.is_none(), "a partial after the final");
                partials.push(text);
            }
            AsrEvent::Final { turn, text } => {
                assert_eq!(turn, TurnId(7));
                last = Some((text, Instant::now()));
            }
        }
    }
    let ended = feeder.await.unwrap();
    let (text, arrived) = last.expect("a final transcript");
    let latency = arrived.duration_since(ended);
    eprintln!("partials: {partials:?}");
    eprintln!(
        "final {text:?} {latency:.2?} after the end of {:.2} s of audio (WER {:.3})",
        samples.len() as f64 / 16_000.0,
        word_error_rate(&reference, &text)
    );
    assert!(!partials.is_empty(), "no partial before the final");
    assert_eq!(text, blocking);
    assert!(latency < Duration::from_secs(1), "the final came {latency:?} after the audio ended");

    // No audio at all: an empty final, and nothing else.
    let (audio, receiver) = mpsc::channel(1);
    drop(audio);
    let events: Vec<_> =
        asr.transcribe(AsrRequest { turn: TurnId(8), language: "en".into(), audio: receiver }).collect().await;
    assert_eq!(events, [Ok(AsrEvent::Final { turn: TurnId(8), text: String::new() })]);
}

#[test]
fn silence_and_other_languages() {
    let _turn = LOCK.blocking_lock();
    let asr = tiny();
    assert_eq!(asr.transcribe_blocking(&[], "en").unwrap(), "");
    assert_eq!(asr.transcribe_blocking(&vec![0.0; 32_000], "en-GB").unwrap(), "");
    let error = asr.transcribe_blocking(&vec![0.0; 16_000], "de").unwrap_err();
    assert!(matches!(&error, ProviderError::BadResponse(m) if m.contains("English")), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn piper_speech_comes_back_as_written() {
    let _turn = LOCK.lock().await;
    let asr = tiny();
    let runtime = OnnxRuntime::load(&models_dir().join(ONNXRUNTIME_LIBRARY)).unwrap();
    let tts = PiperTts::load(&runtime, &models_dir().join(PIPER_JOE)).unwrap();
    let sentences = [
        "Hello there, how can I help you today?",
        "The weather tomorrow will be sunny and warm.",
        "Turn left at the next street and then keep going straight.",
        "I would like to book a table for four people.",
        "My favorite color is green, and I love walking in the park.",
    ];
    let mut pairs = Vec::new();
    for sentence in sentences {
        let request =
            TtsRequest { turn: TurnId(1), text: sentence.into(), voice: "en_US-joe-medium".into(), speed: 1.0 };
        let mut pcm = Vec::new();
        let mut rate = 0;
        for chunk in tts.synthesize(request).collect::<Vec<_>>().await {
            let chunk = chunk.unwrap();
            rate = chunk.sample_rate;
            pcm.extend(chunk.pcm.iter().map(|s| f32::from(*s) / 32768.0));
        }
        let samples = colloquy_rtc::audio::resample(&pcm, rate, 16_000);
        let asr = asr.clone();
        let text = tokio::task::spawn_blocking(move || asr.transcribe_blocking(&samples, "en")).await.unwrap().unwrap();
        eprintln!("{sentence:?} → {text:?} (WER {:.3})", word_error_rate(sentence, &text));
        pairs.push((sentence.to_owned(), text));
    }
    let wer = corpus_word_error_rate(&pairs);
    eprintln!("Piper → Whisper: corpus WER {wer:.3}");
    assert!(wer <= 0.10, "corpus WER {wer:.3}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_stream_stops_the_work() {
    let _turn = LOCK.lock().await;
    let asr = tiny().clone().with_partial_interval(None);
    let (path, _) = librivox().into_iter().find(|(p, _)| p.to_string_lossy().contains("0870")).unwrap();
    let samples = read_16k(&path);

    // Mid-utterance: the session has taken the audio and waits for more; dropping it hangs up.
    let (audio, receiver) = mpsc::channel(1024);
    let mut stream = asr.transcribe(AsrRequest { turn: TurnId(9), language: "en".into(), audio: receiver });
    for piece in samples[..16_000].chunks(320) {
        audio.send(piece.to_vec()).await.unwrap();
    }
    assert!(tokio::time::timeout(Duration::from_millis(200), stream.next()).await.is_err());
    drop(stream);
    tokio::time::timeout(Duration::from_millis(100), audio.closed()).await.expect("the audio receiver closes");
    assert!(audio.send(vec![0.0; 320]).await.is_err());

    // While the final decode runs: it stops at its next step and the CPU goes quiet. How long a
    // whole decode takes here and now, first (the encoder, which cannot be interrupted, takes
    // well under half of it):
    let started = Instant::now();
    let cpu = cpu_time();
    let asr_clone = asr.clone();
    let copy = samples.clone();
    tokio::task::spawn_blocking(move || asr_clone.transcribe_blocking(&copy, "en")).await.unwrap().unwrap();
    let (whole, whole_cpu) = (started.elapsed(), cpu_time() - cpu);
    let (audio, receiver) = mpsc::channel(1024);
    let mut stream = asr.transcribe(AsrRequest { turn: TurnId(10), language: "en".into(), audio: receiver });
    for piece in samples.chunks(320) {
        audio.send(piece.to_vec()).await.unwrap();
    }
    drop(audio);
    let decoding = Instant::now();
    let cpu = cpu_time();
    let cut = whole * 6 / 10;
    assert!(tokio::time::timeout(cut, stream.next()).await.is_err(), "decoding was quicker");
    drop(stream);
    let dropped = decoding.elapsed();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let before_quiet = cpu_time();
    tokio::time::sleep(whole / 2 + Duration::from_millis(100)).await;
    let (until_drop, after) = (before_quiet - cpu, cpu_time() - before_quiet);
    eprintln!(
        "a whole decode: {whole:.2?} ({whole_cpu:?} of CPU); dropped after {dropped:.2?} ({until_drop:?} of CPU), \
         then {after:?} of CPU"
    );
    assert!(after < Duration::from_millis(40), "the decode went on: {after:?} of CPU");
}

#[test]
fn whisper_base_understands_english_too() {
    let _turn = LOCK.blocking_lock();
    let started = Instant::now();
    let before = resident_mib();
    let base = WhisperAsr::load(&models_dir(), LocalAsrModel::WhisperBase).unwrap();
    eprintln!("whisper-base loaded in {:?}, resident memory +{:.0} MiB", started.elapsed(), resident_mib() - before);
    assert_eq!(base.model(), LocalAsrModel::WhisperBase);
    let (path, reference) = librivox().into_iter().find(|(p, _)| p.to_string_lossy().contains("0870")).unwrap();
    let samples = read_16k(&path);
    let started = Instant::now();
    let text = base.transcribe_blocking(&samples, "en").unwrap();
    let wer = word_error_rate(&reference, &text);
    eprintln!(
        "whisper-base: {:.2} s in {:.2?}, WER {wer:.3}: {text:?}",
        samples.len() as f64 / 16_000.0,
        started.elapsed()
    );
    assert!(wer <= 0.15, "WER {wer:.3}");
    let error = base.transcribe_blocking(&samples, "xx").unwrap_err();
    assert!(matches!(&error, ProviderError::BadResponse(m) if m.contains("language")), "{error}");
}
