//! Audio plumbing: Opus at 48 kHz mono in 20 ms frames, WAV files, and resampling.

use std::path::Path;

/// Everything on the wire and between the server and agents is 48 kHz mono.
pub const SAMPLE_RATE: u32 = 48_000;
/// 20 ms at 48 kHz.
pub const FRAME_SAMPLES: usize = 960;

/// An Opus encoder for 20 ms frames of 48 kHz mono speech.
#[derive(Debug)]
pub struct OpusEncoder(opus::Encoder);

impl OpusEncoder {
    pub fn new() -> Result<OpusEncoder, opus::Error> {
        let mut encoder = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        encoder.set_bitrate(opus::Bitrate::Bits(32_000))?;
        Ok(OpusEncoder(encoder))
    }

    /// Encodes one frame of [`FRAME_SAMPLES`] samples.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, opus::Error> {
        let mut out = vec![0u8; 1500];
        let len = self.0.encode(pcm, &mut out)?;
        out.truncate(len);
        Ok(out)
    }
}

/// An Opus decoder to 48 kHz mono (a stereo stream is mixed down).
#[derive(Debug)]
pub struct OpusDecoder(opus::Decoder);

impl OpusDecoder {
    pub fn new() -> Result<OpusDecoder, opus::Error> {
        Ok(OpusDecoder(opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)?))
    }

    /// Decodes one packet (usually 960 samples; up to 120 ms).
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<i16>, opus::Error> {
        let mut out = vec![0i16; 5760];
        let len = self.0.decode(packet, &mut out, false)?;
        out.truncate(len);
        Ok(out)
    }
}

/// Reads a WAV file of any rate and channel count as mono samples in [-1, 1], with its rate.
pub fn read_wav(path: &Path) -> Result<(Vec<f32>, u32), hound::Error> {
    let mut reader = hound::WavReader::open(path)?;
    let spec = reader.spec();
    let channels = usize::from(spec.channels.max(1));
    let interleaved: Vec<f32> = match spec.sample_format {
        hound::SampleFormat::Float => reader.samples::<f32>().collect::<Result<_, _>>()?,
        hound::SampleFormat::Int => {
            let scale = 1.0 / (1i64 << (spec.bits_per_sample - 1)) as f32;
            reader.samples::<i32>().map(|s| s.map(|s| s as f32 * scale)).collect::<Result<_, _>>()?
        }
    };
    let mono = interleaved.chunks(channels).map(|frame| frame.iter().sum::<f32>() / channels as f32).collect();
    Ok((mono, spec.sample_rate))
}

/// Writes 16-bit mono PCM.
pub fn write_wav(path: &Path, samples: &[i16], rate: u32) -> Result<(), hound::Error> {
    let spec =
        hound::WavSpec { channels: 1, sample_rate: rate, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut writer = hound::WavWriter::create(path, spec)?;
    for sample in samples {
        writer.write_sample(*sample)?;
    }
    writer.finalize()
}

/// Converts `samples` from rate `from` to rate `to` with a windowed-sinc (Lanczos, 16 lobes)
/// interpolator, low-passed at the lower of the two Nyquist frequencies.
///
/// The output positions fall on at most `to / gcd(from, to)` distinct fractions of an input sample
/// (320 for 22,050 → 48,000 Hz), so the kernel is computed once per fraction and tap, not once per
/// output sample: `sin` was most of an agent's CPU when it was recomputed for every sample.
pub fn resample(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
    if from == to || samples.is_empty() || from == 0 || to == 0 {
        return samples.to_vec();
    }
    const LOBES: f64 = 16.0;
    /// Beyond this many phases (odd rate pairs), the table would be larger than the work it saves.
    const MAX_PHASES: u64 = 4096;
    let ratio = f64::from(to) / f64::from(from);
    let cutoff = ratio.min(1.0);
    let half_width = LOBES / cutoff;
    let out_len = (samples.len() as f64 * ratio).round() as usize;
    let kernel = |x: f64| {
        let sinc =
            |x: f64| if x.abs() < 1e-9 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
        cutoff * sinc(x * cutoff) * sinc(x * cutoff / LOBES)
    };
    let divisor = gcd(u64::from(from), u64::from(to));
    let (up, down) = (u64::from(to) / divisor, u64::from(from) / divisor);
    if up > MAX_PHASES {
        return (0..out_len)
            .map(|n| {
                let center = n as f64 / ratio;
                let first = (center - half_width).ceil().max(0.0) as usize;
                let last = ((center + half_width).floor() as usize).min(samples.len() - 1);
                let sum: f64 = (first..=last).map(|i| f64::from(samples[i]) * kernel(i as f64 - center)).sum();
                sum as f32
            })
            .collect();
    }
    // Taps d = -reach..=reach around the input sample at or before each output position.
    let reach = half_width.ceil() as i64 + 1;
    let taps = (2 * reach + 1) as usize;
    let table: Vec<f64> = (0..up)
        .flat_map(|phase| {
            let fraction = phase as f64 / up as f64;
            (-reach..=reach).map(move |d| {
                let x = d as f64 - fraction;
                if x.abs() <= half_width { kernel(x) } else { 0.0 }
            })
        })
        .collect();
    let last = samples.len() as i64 - 1;
    (0..out_len as u64)
        .map(|n| {
            let position = n * down;
            let (base, phase) = ((position / up) as i64, (position % up) as usize);
            let weights = &table[phase * taps..(phase + 1) * taps];
            let mut sum = 0.0;
            for (d, weight) in (-reach..=reach).zip(weights) {
                let i = base + d;
                if (0..=last).contains(&i) {
                    sum += f64::from(samples[i as usize]) * weight;
                }
            }
            sum as f32
        })
        .collect()
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Converts [-1, 1] floats to 16-bit samples, clipping.
pub fn to_i16(samples: &[f32]) -> Vec<i16> {
    samples.iter().map(|s| (s.clamp(-1.0, 1.0) * 32767.0) as i16).collect()
}

/// The strongest frequency in `samples` between `low` and `high` Hz (1 Hz steps, Goertzel), with
/// its share of the signal's power. For tests and benchmarks that check a tone came through.
pub fn dominant_frequency(samples: &[i16], rate: u32, low: u32, high: u32) -> (u32, f64) {
    let total: f64 = samples.iter().map(|s| f64::from(*s).powi(2)).sum::<f64>().max(1.0);
    let mut best = (low, 0.0);
    for freq in low..=high {
        let w = 2.0 * std::f64::consts::PI * f64::from(freq) / f64::from(rate);
        let coeff = 2.0 * w.cos();
        let (mut s1, mut s2) = (0.0, 0.0);
        for sample in samples {
            let s0 = f64::from(*sample) + coeff * s1 - s2;
            s2 = s1;
            s1 = s0;
        }
        let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
        if power > best.1 {
            best = (freq, power);
        }
    }
    // Goertzel's power of a pure tone is N²A²/4 against a total of N·A²/2.
    (best.0, best.1 * 2.0 / (samples.len() as f64 * total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f32, rate: u32, seconds: f32) -> Vec<f32> {
        (0..(rate as f32 * seconds) as usize)
            .map(|i| 0.5 * (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn opus_round_trips_a_tone() {
        let pcm = to_i16(&tone(440.0, SAMPLE_RATE, 1.0));
        let (mut encoder, mut decoder) = (OpusEncoder::new().unwrap(), OpusDecoder::new().unwrap());
        let mut decoded = Vec::new();
        for frame in pcm.chunks_exact(FRAME_SAMPLES) {
            let packet = encoder.encode(frame).unwrap();
            assert!(packet.len() < 200);
            decoded.extend(decoder.decode(&packet).unwrap());
        }
        let (freq, share) = dominant_frequency(&decoded[4800..], SAMPLE_RATE, 300, 600);
        assert_eq!(freq, 440);
        assert!(share > 0.8, "{share}");
    }

    #[test]
    fn resampling_keeps_a_tone_and_the_length() {
        for (from, to) in [(16_000, 48_000), (44_100, 48_000), (48_000, 16_000), (22_050, 48_000)] {
            let out = resample(&tone(440.0, from, 0.5), from, to);
            assert_eq!(out.len(), (0.5 * to as f32) as usize);
            let (freq, share) = dominant_frequency(&to_i16(&out[out.len() / 4..]), to, 300, 600);
            assert_eq!(freq, 440, "{from} → {to}");
            assert!(share > 0.9, "{from} → {to}: {share}");
        }
    }

    /// The interpolator computed directly, one kernel evaluation per tap and output sample.
    fn resample_directly(samples: &[f32], from: u32, to: u32) -> Vec<f32> {
        let ratio = f64::from(to) / f64::from(from);
        let cutoff = ratio.min(1.0);
        let half_width = 16.0 / cutoff;
        let sinc =
            |x: f64| if x.abs() < 1e-9 { 1.0 } else { (std::f64::consts::PI * x).sin() / (std::f64::consts::PI * x) };
        (0..(samples.len() as f64 * ratio).round() as usize)
            .map(|n| {
                let center = n as f64 / ratio;
                let first = (center - half_width).ceil().max(0.0) as usize;
                let last = ((center + half_width).floor() as usize).min(samples.len() - 1);
                (first..=last)
                    .map(|i| {
                        let x = (i as f64 - center) * cutoff;
                        f64::from(samples[i]) * cutoff * sinc(x) * sinc(x / 16.0)
                    })
                    .sum::<f64>() as f32
            })
            .collect()
    }

    #[test]
    fn the_kernel_table_gives_the_direct_interpolation() {
        let noise: Vec<f32> =
            (0..4000u32).map(|i| ((i.wrapping_mul(2_654_435_761) >> 16) as f32 / 65536.0) - 0.5).collect();
        for (from, to) in [(22_050, 48_000), (24_000, 48_000), (48_000, 16_000), (16_000, 44_100), (44_100, 16_000)] {
            let (fast, direct) = (resample(&noise, from, to), resample_directly(&noise, from, to));
            assert_eq!(fast.len(), direct.len());
            let worst = fast.iter().zip(&direct).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-5, "{from} → {to}: {worst}");
        }
    }
}
