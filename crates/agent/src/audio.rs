//! The agent's ears: the listened-to participants' 48 kHz frames mixed into one stream, brought
//! down to the 16 kHz that VAD and ASR take, and cut into the 32 ms frames Silero expects.

use colloquy_providers::vad::VAD_FRAME;

/// A 48 → 16 kHz decimator with a windowed-sinc low-pass (cut-off 7.2 kHz, below the new Nyquist
/// of 8 kHz), keeping its history across frames so there are no seams at frame edges.
#[derive(Debug)]
pub struct Downsampler {
    taps: Vec<f32>,
    /// The last `TAPS - 1` input samples, then the frame being processed: each output is one dot
    /// product over a contiguous slice.
    window: Vec<f32>,
    /// Where the next output's newest input sample is, counted from the start of the frame (0..3),
    /// carried across frames.
    phase: usize,
}

impl Default for Downsampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Downsampler {
    const TAPS: usize = 31;
    const FACTOR: usize = 3;

    pub fn new() -> Downsampler {
        let cutoff = 7_200.0 / 48_000.0;
        let middle = (Self::TAPS / 2) as f32;
        let mut taps: Vec<f32> = (0..Self::TAPS)
            .map(|i| {
                let x = i as f32 - middle;
                let sinc = if x == 0.0 {
                    2.0 * cutoff
                } else {
                    (2.0 * std::f32::consts::PI * cutoff * x).sin() / (std::f32::consts::PI * x)
                };
                let window = 0.54 - 0.46 * (2.0 * std::f32::consts::PI * i as f32 / (Self::TAPS - 1) as f32).cos();
                sinc * window
            })
            .collect();
        let sum: f32 = taps.iter().sum();
        taps.iter_mut().for_each(|t| *t /= sum);
        Downsampler { taps, window: vec![0.0; Self::TAPS - 1], phase: 0 }
    }

    /// 48 kHz i16 in, 16 kHz f32 in [-1, 1] out.
    pub fn process(&mut self, pcm: &[i16]) -> Vec<f32> {
        self.window.extend(pcm.iter().map(|s| f32::from(*s) / 32768.0));
        let history = Self::TAPS - 1;
        let outputs = (pcm.len() + Self::FACTOR - 1 - self.phase) / Self::FACTOR;
        let out = (0..outputs)
            .map(|k| {
                // The newest sample of this output is frame sample `phase + 3k`.
                let end = history + self.phase + Self::FACTOR * k + 1;
                self.window[end - Self::TAPS..end].iter().zip(&self.taps).map(|(s, t)| s * t).sum()
            })
            .collect();
        self.phase = (self.phase + Self::FACTOR * outputs) - pcm.len();
        self.window.drain(..pcm.len());
        out
    }
}

/// Mixes the frames of several listened-to participants: frames that arrive in the same 20 ms
/// are summed. With one participant, frames pass straight through (no added delay).
#[derive(Debug, Default)]
pub struct Mixer {
    pending: Option<Vec<i32>>,
    /// Who contributed to `pending`.
    contributors: Vec<String>,
}

impl Mixer {
    /// Adds `from`'s frame; returns the frames ready to go on (zero, one or two).
    pub fn push(&mut self, from: &str, pcm: Vec<i16>, speakers: usize) -> Vec<Vec<i16>> {
        let mut ready = Vec::new();
        if speakers <= 1 && self.pending.is_none() {
            ready.push(pcm);
            return ready;
        }
        if self.contributors.iter().any(|c| c == from) || speakers <= 1 {
            ready.extend(self.flush());
        }
        let pending = self.pending.get_or_insert_with(|| vec![0; pcm.len()]);
        for (mixed, sample) in pending.iter_mut().zip(&pcm) {
            *mixed += i32::from(*sample);
        }
        self.contributors.push(from.to_owned());
        if self.contributors.len() >= speakers {
            ready.extend(self.flush());
        }
        ready
    }

    fn flush(&mut self) -> Option<Vec<i16>> {
        self.contributors.clear();
        let pending = self.pending.take()?;
        Some(pending.into_iter().map(|s| s.clamp(i32::from(i16::MIN), i32::from(i16::MAX)) as i16).collect())
    }
}

/// Cuts a 16 kHz stream into VAD frames.
#[derive(Debug, Default)]
pub struct VadFramer {
    buffer: Vec<f32>,
}

impl VadFramer {
    /// Adds samples; returns the complete frames.
    pub fn push(&mut self, samples: &[f32]) -> Vec<[f32; VAD_FRAME]> {
        self.buffer.extend_from_slice(samples);
        let mut frames = Vec::new();
        while self.buffer.len() >= VAD_FRAME {
            let frame: Vec<f32> = self.buffer.drain(..VAD_FRAME).collect();
            frames.push(frame.try_into().expect("VAD_FRAME samples"));
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: f32, n: usize, start: usize) -> Vec<i16> {
        (start..start + n)
            .map(|i| ((2.0 * std::f32::consts::PI * freq * i as f32 / rate).sin() * 16_000.0) as i16)
            .collect()
    }

    fn rms(samples: &[f32]) -> f32 {
        (samples.iter().map(|s| s * s).sum::<f32>() / samples.len() as f32).sqrt()
    }

    #[test]
    fn speech_frequencies_pass_and_those_above_8_khz_are_removed() {
        for (freq, passes) in [(300.0, true), (3_000.0, true), (12_000.0, false), (20_000.0, false)] {
            let mut down = Downsampler::new();
            let mut out = Vec::new();
            for frame in 0..10 {
                out.extend(down.process(&tone(freq, 48_000.0, 960, frame * 960)));
            }
            assert_eq!(out.len(), 3200);
            let level = rms(&out[100..]);
            let input = 16_000.0 / 32768.0 / 2f32.sqrt();
            if passes {
                assert!((level / input - 1.0).abs() < 0.1, "{freq} Hz: {level} vs {input}");
            } else {
                assert!(level / input < 0.05, "{freq} Hz leaks: {level} vs {input}");
            }
        }
    }

    /// The decimator computed one sample at a time, as its definition reads.
    fn downsample_directly(taps: &[f32], input: &[f32]) -> Vec<f32> {
        let padded: Vec<f32> = std::iter::repeat_n(0.0, taps.len() - 1).chain(input.iter().copied()).collect();
        (0..input.len())
            .step_by(3)
            .map(|i| padded[i..i + taps.len()].iter().zip(taps).map(|(s, t)| s * t).sum())
            .collect()
    }

    #[test]
    fn frames_of_any_length_give_the_same_output_as_one_long_signal() {
        let signal: Vec<i16> = tone(440.0, 48_000.0, 4000, 0)
            .iter()
            .zip(tone(9000.0, 48_000.0, 4000, 0))
            .map(|(a, b)| a / 2 + b / 2)
            .collect();
        let direct = downsample_directly(
            &Downsampler::new().taps,
            &signal.iter().map(|s| f32::from(*s) / 32768.0).collect::<Vec<_>>(),
        );
        for frame in [960, 7, 1000, 1] {
            let mut down = Downsampler::new();
            let out: Vec<f32> = signal.chunks(frame).flat_map(|chunk| down.process(chunk)).collect();
            assert_eq!(out.len(), direct.len(), "frames of {frame}");
            let worst = out.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "frames of {frame}: {worst}");
        }
    }

    #[test]
    fn one_speaker_passes_through_and_two_are_summed_per_frame() {
        let mut mixer = Mixer::default();
        assert_eq!(mixer.push("a", vec![1, 2], 1), vec![vec![1, 2]]);
        assert!(mixer.push("a", vec![1, 2], 2).is_empty());
        assert_eq!(mixer.push("b", vec![10, i16::MAX], 2), vec![vec![11, i16::MAX]]);
        // "a" twice before "b": the first frame goes out alone.
        assert!(mixer.push("a", vec![1, 1], 2).is_empty());
        assert_eq!(mixer.push("a", vec![2, 2], 2), vec![vec![1, 1]]);
    }

    #[test]
    fn vad_frames_are_512_samples_across_pushes() {
        let mut framer = VadFramer::default();
        assert!(framer.push(&[0.0; 320]).is_empty());
        assert_eq!(framer.push(&[0.0; 320]).len(), 1);
        assert_eq!(framer.push(&[0.0; 900]).len(), 2);
    }
}
