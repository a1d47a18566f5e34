//! Per-turn latency of every agent on this node, as histograms the metrics endpoint reads at scrape
//! time. Sessions observe; nothing here allocates or locks.

use std::sync::atomic::{AtomicU64, Ordering};

use colloquy_model::{TurnEnd, TurnMetrics};

/// Upper bounds of the histogram buckets, in milliseconds (a last bucket catches the rest).
pub const BUCKETS_MS: [u64; 14] = [10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 10000];

/// The stages of a turn, in the order of [`TurnMetrics`]' fields.
pub const STAGES: [&str; 7] = ["eou_delay", "asr_ttlw", "llm_ttft", "llm_ttfs", "tts_ttfb", "engine_overhead", "e2e"];

/// One latency histogram.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Counts per bucket of [`BUCKETS_MS`], then the overflow bucket (not cumulative).
    buckets: [AtomicU64; BUCKETS_MS.len() + 1],
    sum_ms: AtomicU64,
    count: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistogramSnapshot {
    /// Cumulative counts for each bound of [`BUCKETS_MS`].
    pub cumulative: Vec<(u64, u64)>,
    pub sum_ms: u64,
    pub count: u64,
}

impl Histogram {
    pub fn observe(&self, ms: u32) {
        let ms = u64::from(ms);
        let bucket = BUCKETS_MS.iter().position(|bound| ms <= *bound).unwrap_or(BUCKETS_MS.len());
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum_ms.fetch_add(ms, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> HistogramSnapshot {
        let mut total = 0;
        let cumulative = BUCKETS_MS
            .iter()
            .zip(&self.buckets)
            .map(|(bound, count)| {
                total += count.load(Ordering::Relaxed);
                (*bound, total)
            })
            .collect();
        HistogramSnapshot {
            cumulative,
            sum_ms: self.sum_ms.load(Ordering::Relaxed),
            count: self.count.load(Ordering::Relaxed),
        }
    }
}

/// Latency per stage and turn counts per ending, for every agent of the node.
#[derive(Debug, Default)]
pub struct TurnStats {
    stages: [Histogram; STAGES.len()],
    /// Turns ended: ok, interrupted, ignored, error.
    ended: [AtomicU64; 4],
    /// Agent audio frames sent into channels, and how many of them left more than
    /// [`LATE_FRAME_MS`] after their time.
    frames: AtomicU64,
    late_frames: AtomicU64,
}

/// A playout frame sent this much after its time counts as late.
pub const LATE_FRAME_MS: u64 = 10;

impl TurnStats {
    /// Counts a turn's metrics (stages that did not run are not counted).
    pub fn observe(&self, metrics: &TurnMetrics) {
        let values = [
            metrics.eou_delay_ms,
            metrics.asr_ttlw_ms,
            metrics.llm_ttft_ms,
            metrics.llm_ttfs_ms,
            metrics.tts_ttfb_ms,
            metrics.engine_overhead_ms,
            metrics.e2e_ms,
        ];
        for (histogram, value) in self.stages.iter().zip(values) {
            if let Some(ms) = value {
                histogram.observe(ms);
            }
        }
    }

    pub fn turn_ended(&self, end: TurnEnd) {
        let index = match end {
            TurnEnd::Ok => 0,
            TurnEnd::Interrupted => 1,
            TurnEnd::Ignored => 2,
            TurnEnd::Error => 3,
        };
        self.ended[index].fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a playout frame sent `lateness` after its time.
    pub fn frame_sent(&self, lateness: std::time::Duration) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        if lateness.as_millis() as u64 > LATE_FRAME_MS {
            self.late_frames.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Frames sent, and how many late.
    pub fn frames(&self) -> (u64, u64) {
        (self.frames.load(Ordering::Relaxed), self.late_frames.load(Ordering::Relaxed))
    }

    /// Each stage's name and histogram.
    pub fn stages(&self) -> impl Iterator<Item = (&'static str, HistogramSnapshot)> + '_ {
        STAGES.iter().zip(&self.stages).map(|(name, h)| (*name, h.snapshot()))
    }

    /// Turns ended, by how they ended.
    pub fn ended(&self) -> [(&'static str, u64); 4] {
        let count = |i: usize| self.ended[i].load(Ordering::Relaxed);
        [("ok", count(0)), ("interrupted", count(1)), ("ignored", count(2)), ("error", count(3))]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_land_in_cumulative_buckets() {
        let stats = TurnStats::default();
        stats.observe(&TurnMetrics { e2e_ms: Some(640), llm_ttft_ms: Some(5), ..TurnMetrics::default() });
        stats.observe(&TurnMetrics { e2e_ms: Some(20_000), ..TurnMetrics::default() });
        let stages: Vec<_> = stats.stages().collect();
        let (name, e2e) = &stages[6];
        assert_eq!(*name, "e2e");
        assert_eq!((e2e.count, e2e.sum_ms), (2, 20_640));
        assert_eq!(e2e.cumulative[6], (500, 0));
        assert_eq!(e2e.cumulative[7], (750, 1));
        assert_eq!(e2e.cumulative.last(), Some(&(10_000, 1)), "20 s is past the last bound");
        assert_eq!(stages[2].1.cumulative[0], (10, 1));
        assert_eq!(stages[0].1.count, 0);
    }
}
