//! Scrapes of `/metrics`: Prometheus text → samples → a short history per series, from which
//! the panel draws values or (for counters) rates.

use std::collections::{BTreeMap, VecDeque};

/// Points kept per series (two minutes at one scrape per second).
pub const HISTORY: usize = 120;

/// Rates are taken over this many seconds of scrapes.
pub const RATE_WINDOW: f64 = 5.0;

/// One scrape: series name with labels (`containment_kms_decrypt_total{holder="a"}`) → value.
pub type Scrape = cc_proto::metrics::Samples;

/// The one Prometheus text parser (`cc_proto::metrics::parse`).
pub use cc_proto::metrics::parse;

#[derive(Debug, Default, Clone)]
pub struct History {
    /// Seconds since the panel started, per scrape.
    pub times: VecDeque<f64>,
    pub series: BTreeMap<String, VecDeque<f64>>,
}

impl History {
    pub fn add(&mut self, t: f64, scrape: &Scrape) {
        if self.times.len() == HISTORY {
            self.times.pop_front();
            for v in self.series.values_mut() {
                v.pop_front();
            }
        }
        let n = self.times.len();
        self.times.push_back(t);
        for (k, v) in scrape {
            let s = self.series.entry(k.clone()).or_insert_with(|| {
                // A series that appears later is NaN-padded so points stay aligned in time.
                std::iter::repeat_n(f64::NAN, n).collect()
            });
            s.push_back(*v);
        }
        for s in self.series.values_mut() {
            if s.len() < self.times.len() {
                s.push_back(f64::NAN);
            }
        }
    }

    pub fn last(&self, series: &str) -> Option<f64> {
        self.series.get(series).and_then(|s| s.back().copied())
    }

    /// Per-second rate at each scrape after the first, over the scrapes of the last
    /// [`RATE_WINDOW`] seconds (so one late or early scrape does not dip to 0 and spike 2×);
    /// a counter reset counts its new value, as Prometheus's `rate` does.
    pub fn rates(&self, series: &str) -> Vec<f64> {
        let Some(s) = self.series.get(series) else {
            return Vec::new();
        };
        let t: Vec<f64> = self.times.iter().copied().collect();
        let v: Vec<f64> = s.iter().copied().collect();
        (1..v.len())
            .map(|i| {
                let mut j = i - 1;
                while j > 0 && t[i] - t[j - 1] <= RATE_WINDOW {
                    j -= 1;
                }
                let mut increase = 0.0;
                let mut start = None;
                for k in j + 1..=i {
                    let (a, b) = (v[k - 1], v[k]);
                    if a.is_nan() || b.is_nan() {
                        continue;
                    }
                    start.get_or_insert(t[k - 1]);
                    increase += if b < a { b } else { b - a };
                }
                match start {
                    Some(t0) if t[i] > t0 => increase / (t[i] - t0),
                    _ => 0.0,
                }
            })
            .collect()
    }

    /// The sum over series whose name starts with `prefix` and whose labels contain `label`.
    pub fn sum(&self, prefix: &str, label: &str) -> f64 {
        self.series
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && k.contains(label))
            .filter_map(|(_, v)| v.back().copied())
            .filter(|v| !v.is_nan())
            .sum()
    }

    /// Counters are charted as rates, everything else as values.
    pub fn is_counter(series: &str) -> bool {
        let name = series.split('{').next().unwrap_or(series);
        name.ends_with("_total") || name.ends_with("_count") || name.ends_with("_sum")
    }

    /// Mean latency (seconds) over the last interval of a histogram `name`.
    pub fn mean_latency(&self, name: &str) -> Option<f64> {
        let sum = self.rates(&format!("{name}_sum"));
        let count = self.rates(&format!("{name}_count"));
        match (sum.last(), count.last()) {
            (Some(s), Some(c)) if *c > 0.0 => Some(s / c),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_steady_rate_stays_steady_when_scrapes_jitter() {
        // 5 a second, scraped about every second with up to ±0.45 s of lateness — and the
        // counter read at the scrape's own moment.
        let mut h = History::default();
        let jitter = [
            0.0, 0.45, -0.4, 0.3, 0.0, -0.45, 0.4, 0.1, -0.2, 0.45, -0.45, 0.0,
        ];
        for (i, j) in jitter.iter().enumerate() {
            let t = i as f64 + j;
            h.add(t, &Scrape::from([("s_total".into(), (t * 5.0).floor())]));
        }
        let r = h.rates("s_total");
        for x in &r[3..] {
            assert!((4.0..=6.0).contains(x), "{r:?}");
        }
    }

    #[test]
    fn rates_and_alignment() {
        let mut h = History::default();
        h.add(0.0, &Scrape::from([("a_total".into(), 10.0)]));
        h.add(
            2.0,
            &Scrape::from([("a_total".into(), 14.0), ("b".into(), 1.0)]),
        );
        h.add(
            3.0,
            &Scrape::from([("a_total".into(), 2.0), ("b".into(), 2.0)]),
        );
        // 10 → 14 over 2 s; then a reset to 2 counts 2 more: 6 over 3 s.
        assert_eq!(h.rates("a_total"), [2.0, 2.0]);
        assert_eq!(h.series["b"].len(), 3);
        assert!(h.series["b"][0].is_nan());
        assert_eq!(h.last("b"), Some(2.0));
        assert!(History::is_counter("a_total"));
        assert!(!History::is_counter("b"));
        for i in 0..(HISTORY + 10) {
            h.add(4.0 + i as f64, &Scrape::new());
        }
        assert_eq!(h.times.len(), HISTORY);
        assert!(h.series.values().all(|s| s.len() == HISTORY));
    }
}
