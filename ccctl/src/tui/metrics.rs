//! Scrapes of `/metrics`: Prometheus text → samples → a short history per series, from which
//! the panel draws values or (for counters) rates.

use std::collections::{BTreeMap, VecDeque};

/// Points kept per series (two minutes at one scrape per second).
pub const HISTORY: usize = 120;

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

    /// Per-second rate between consecutive scrapes (counter resets count as 0).
    pub fn rates(&self, series: &str) -> Vec<f64> {
        let Some(s) = self.series.get(series) else {
            return Vec::new();
        };
        let t: Vec<f64> = self.times.iter().copied().collect();
        s.iter()
            .zip(s.iter().skip(1))
            .zip(t.iter().zip(t.iter().skip(1)))
            .map(|((a, b), (ta, tb))| {
                let dt = tb - ta;
                if dt <= 0.0 || a.is_nan() || b.is_nan() || b < a {
                    0.0
                } else {
                    (b - a) / dt
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
        assert_eq!(h.rates("a_total"), [2.0, 0.0]);
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
