//! What a stretch of the admission bench cost, read from two scrapes of Prometheus metrics:
//! kube-apiserver's `/metrics` and the in-process webhook's recorder, before and after.
//!
//! The text is parsed by `prometheus-parse`; a histogram's `_sum` and `_count` series come out
//! of it as plain samples named so, which is all this needs: means over the stretch are
//! differences of sums over differences of counts.

use prometheus_parse::{Labels, Scrape, Value};
use std::collections::BTreeMap;

/// One scrape, as `metric → key → value`, where a key names a sample's labels
/// (`name="value",…`, sorted), so two scrapes can be subtracted sample by sample.
pub struct Metrics(BTreeMap<String, BTreeMap<String, (Labels, f64)>>);

impl Metrics {
    /// Parses Prometheus text-format `text`, keeping counters, gauges and untyped samples
    /// (histogram buckets and summary quantiles are left out; their `_sum` and `_count` stay).
    ///
    /// # Errors
    /// Never in practice: the parser's only error is its line iterator's, which cannot fail here.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let scrape = Scrape::parse(text.lines().map(|line| Ok(line.to_owned())))?;
        let mut metrics: BTreeMap<String, BTreeMap<String, (Labels, f64)>> = BTreeMap::new();
        for sample in scrape.samples {
            let (Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value)) = sample.value else {
                continue;
            };
            let key = sample.labels.to_string();
            metrics.entry(sample.metric).or_default().insert(key, (sample.labels, value));
        }
        Ok(Self(metrics))
    }

    /// How much each sample of `metric` grew since `before`, summed by the key `by` makes of
    /// its labels (samples for which it makes none are left out, as are keys that did not grow).
    pub fn growth_by(&self, before: &Metrics, metric: &str, by: impl Fn(&Labels) -> Option<String>) -> Growth {
        let mut grown = BTreeMap::new();
        let earlier = before.0.get(metric);
        for (key, (labels, value)) in self.0.get(metric).into_iter().flatten() {
            let Some(group) = by(labels) else { continue };
            let was = earlier.and_then(|samples| samples.get(key)).map_or(0.0, |(_, v)| *v);
            *grown.entry(group).or_insert(0.0) += value - was;
        }
        grown.retain(|_, grew| *grew > 0.0);
        Growth(grown)
    }

    /// The mean of histogram `metric` (`<metric>_sum / <metric>_count`) over the samples
    /// observed since `before`, grouped by the key `by` makes of their labels: `(observations,
    /// mean)` per key, in the metric's unit.
    pub fn mean_by(
        &self,
        before: &Metrics,
        metric: &str,
        by: impl Fn(&Labels) -> Option<String> + Copy,
    ) -> BTreeMap<String, (f64, f64)> {
        let sums = self.growth_by(before, &format!("{metric}_sum"), by);
        let counts = self.growth_by(before, &format!("{metric}_count"), by);
        counts.0.into_iter().map(|(key, count)| (key.clone(), (count, sums.get(&key) / count))).collect()
    }
}

/// Growth of a counter over a stretch, by key.
pub struct Growth(BTreeMap<String, f64>);

impl Growth {
    /// The growth under `key`, 0 when it did not grow.
    pub fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    /// `"<growth> <key>, …"` from the largest growth down, or `none`.
    pub fn describe(&self) -> String {
        let mut grown: Vec<_> = self.0.iter().collect();
        grown.sort_by(|a, b| b.1.total_cmp(a.1).then_with(|| a.0.cmp(b.0)));
        let parts: Vec<String> = grown.iter().map(|(key, n)| format!("{n} {key}")).collect();
        if parts.is_empty() { "none".into() } else { parts.join(", ") }
    }
}
