//! Whisper's log-mel front end, as OpenAI's `log_mel_spectrogram` computes it: a 400-sample periodic
//! Hann window every 160 samples (10 ms) over the audio followed by silence, the first window
//! centred on sample 0 (reflection on the left), power spectrum, a Slaney-style mel filterbank
//! (librosa's default, 0–8 kHz), `log10` floored at 1e-10, then clamped to 8 (decades) below the
//! loudest value and scaled as `(x + 4) / 4`.
//!
//! The 201-bin DFT and the filterbank are two matrix products, so candle's SIMD matmul does the
//! work: about 1 ms per second of audio. candle's own `pcm_to_mel` always pads to 30 s windows,
//! which is what this front end exists to avoid: frames after the audio's last window are pure
//! silence and get the silence value without computing it.

use candle_core::{Device, Tensor};

/// Samples per window.
pub(super) const N_FFT: usize = 400;
/// Samples between windows: one mel frame per 10 ms.
pub(super) const HOP: usize = 160;
const BINS: usize = N_FFT / 2 + 1;
const SAMPLE_RATE: f64 = 16_000.0;

#[derive(Debug)]
pub(super) struct MelFrontEnd {
    n_mels: usize,
    /// [N_FFT, 2 × BINS]: the Hann window times cos, then times sin, for each bin.
    basis: Tensor,
    /// [BINS, n_mels].
    filters: Tensor,
}

impl MelFrontEnd {
    pub fn new(n_mels: usize) -> candle_core::Result<MelFrontEnd> {
        let mut basis = vec![0f32; N_FFT * 2 * BINS];
        for n in 0..N_FFT {
            let window = 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos();
            for k in 0..BINS {
                // (k * n) mod N_FFT keeps the angle small and exact.
                let angle = 2.0 * std::f64::consts::PI * ((k * n) % N_FFT) as f64 / N_FFT as f64;
                basis[n * 2 * BINS + k] = (window * angle.cos()) as f32;
                basis[n * 2 * BINS + BINS + k] = (window * angle.sin()) as f32;
            }
        }
        let weights = slaney_filterbank(n_mels);
        let mut filters = vec![0f32; BINS * n_mels];
        for (m, row) in weights.iter().enumerate() {
            for (k, w) in row.iter().enumerate() {
                filters[k * n_mels + m] = *w as f32;
            }
        }
        Ok(MelFrontEnd {
            n_mels,
            basis: Tensor::from_vec(basis, (N_FFT, 2 * BINS), &Device::Cpu)?,
            filters: Tensor::from_vec(filters, (BINS, n_mels), &Device::Cpu)?,
        })
    }

    /// The frames that hold some of `samples` (the rest are silence).
    pub fn audio_frames(samples: usize) -> usize {
        if samples == 0 { 0 } else { (samples + N_FFT / 2).div_ceil(HOP) }
    }

    /// The log-mel spectrogram of `samples` followed by silence, `frames` long: [1, n_mels, frames].
    pub fn log_mel(&self, samples: &[f32], frames: usize) -> candle_core::Result<Tensor> {
        let computed = Self::audio_frames(samples.len()).min(frames);
        let mut windows = vec![0f32; computed * N_FFT];
        let half = (N_FFT / 2) as isize;
        for (t, window) in windows.chunks_exact_mut(N_FFT).enumerate() {
            for (j, out) in window.iter_mut().enumerate() {
                let index = (t * HOP) as isize + j as isize - half;
                // Reflection at the start (torch.stft's centre padding), silence after the end.
                let index = index.unsigned_abs();
                *out = samples.get(index).copied().unwrap_or(0.0);
            }
        }
        let mut mel = Vec::new();
        if computed > 0 {
            let spectrum = Tensor::from_vec(windows, (computed, N_FFT), &Device::Cpu)?.matmul(&self.basis)?;
            let power = (spectrum.narrow(1, 0, BINS)?.sqr()? + spectrum.narrow(1, BINS, BINS)?.sqr()?)?;
            mel = power.matmul(&self.filters)?.flatten_all()?.to_vec1::<f32>()?;
        }
        let log = |v: f32| v.max(1e-10).log10();
        // Silence is log10(1e-10) = -10 before the clamp.
        let loudest = mel.iter().copied().map(log).fold(-10f32, f32::max);
        let floor = loudest - 8.0;
        let scale = |v: f32| (v.max(floor) + 4.0) / 4.0;
        let silence = scale(-10.0);
        let mut out = vec![silence; self.n_mels * frames];
        for t in 0..computed {
            for m in 0..self.n_mels {
                out[m * frames + t] = scale(log(mel[t * self.n_mels + m]));
            }
        }
        Tensor::from_vec(out, (1, self.n_mels, frames), &Device::Cpu)
    }
}

/// librosa's `filters.mel(sr=16000, n_fft=400, n_mels)`: triangles on the Slaney mel scale (linear
/// below 1 kHz, logarithmic above), each normalised to unit area ("slaney" norm). [n_mels][BINS].
fn slaney_filterbank(n_mels: usize) -> Vec<Vec<f64>> {
    const F_SP: f64 = 200.0 / 3.0;
    const MIN_LOG_HZ: f64 = 1000.0;
    const MIN_LOG_MEL: f64 = MIN_LOG_HZ / F_SP;
    let log_step = 6.4f64.ln() / 27.0;
    let hz_to_mel =
        |hz: f64| if hz >= MIN_LOG_HZ { MIN_LOG_MEL + (hz / MIN_LOG_HZ).ln() / log_step } else { hz / F_SP };
    let mel_to_hz =
        |mel: f64| if mel >= MIN_LOG_MEL { MIN_LOG_HZ * (log_step * (mel - MIN_LOG_MEL)).exp() } else { mel * F_SP };
    let top = hz_to_mel(SAMPLE_RATE / 2.0);
    let edges: Vec<f64> = (0..n_mels + 2).map(|i| mel_to_hz(top * i as f64 / (n_mels + 1) as f64)).collect();
    let bin_hz: Vec<f64> = (0..BINS).map(|k| k as f64 * SAMPLE_RATE / N_FFT as f64).collect();
    (0..n_mels)
        .map(|m| {
            let (low, centre, high) = (edges[m], edges[m + 1], edges[m + 2]);
            let norm = 2.0 / (high - low);
            bin_hz
                .iter()
                .map(|&f| {
                    let rising = (f - low) / (centre - low);
                    let falling = (high - f) / (high - centre);
                    rising.min(falling).max(0.0) * norm
                })
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_filterbank_matches_librosa() {
        let filters = slaney_filterbank(80);
        assert_eq!((filters.len(), filters[0].len()), (80, 201));
        // Values from librosa.filters.mel(sr=16000, n_fft=400, n_mels=80).
        assert!((filters[0][1] - 0.024_862_59).abs() < 1e-6, "{}", filters[0][1]);
        assert_eq!(filters[0][0], 0.0);
        // Every filter has some weight, and the top one reaches the last bins below 8 kHz.
        assert!(filters.iter().all(|row| row.iter().any(|w| *w > 0.0)));
        assert!(filters[79][199] > 0.0);
    }

    #[test]
    fn a_tone_lights_up_the_mel_band_of_its_frequency() {
        let front = MelFrontEnd::new(80).unwrap();
        let samples: Vec<f32> =
            (0..16_000).map(|i| 0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / 16_000.0).sin()).collect();
        let mel = front.log_mel(&samples, 120).unwrap();
        assert_eq!(mel.dims(), [1, 80, 120]);
        let mel = mel.squeeze(0).unwrap().to_vec2::<f32>().unwrap();
        // Frame 50 (0.5 s): the loudest band is the one around 440 Hz (below 1 kHz the 80 bands' centres
        // are 37.2 Hz apart, band m centred on (m + 1) × 37.2 Hz: band 11 for 440 Hz).
        let column: Vec<f32> = mel.iter().map(|row| row[50]).collect();
        let loudest = column.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(loudest, 11);
        // Past the audio: every frame is the silence value, 8 decades below the peak.
        let peak = mel.iter().flatten().copied().fold(f32::MIN, f32::max);
        assert!((mel[0][119] - (peak - 2.0)).abs() < 1e-5, "{} vs {}", mel[0][119], peak);
        assert_eq!(MelFrontEnd::audio_frames(16_000), 102);
        assert_eq!(MelFrontEnd::audio_frames(0), 0);
    }

    #[test]
    fn empty_audio_is_all_silence() {
        let front = MelFrontEnd::new(80).unwrap();
        let mel = front.log_mel(&[], 4).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(mel.iter().all(|v| *v == -1.5), "{mel:?}");
    }
}
