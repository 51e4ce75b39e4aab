//! Metric primitives (counter, gauge, histogram) and labelled families, with their encoding.
//!
//! Why it exists: recording sits on the hottest paths of the bridge (every packet), so it must be
//! a handful of atomic operations, and a labelled family must neither grow without bound nor make
//! recorders queue behind one another. Hand-rolled rather than a crate: what the bridge needs is
//! small (three kinds, at most two labels, one bucket layout) and this keeps the encoder under our
//! control for `promtool` cleanliness.
//!
//! It owns the storage of every series. It must never hold a lock across an `.await` (nothing here
//! is async), never panic (a poisoned lock is recovered: only atomics are touched under it, so the
//! data cannot be half-written), and never let label cardinality exceed its cap.
//!
//! Design: a family is `RwLock<HashMap<first label value, Vec<(second label value, series)>>>`.
//! Recording an existing series takes the read lock (shared; recorders never wait for each other)
//! and bumps atomics; only the first sighting of a new label combination takes the write lock. The
//! second label is always a `&'static str` (an outcome, reason, queue type), so its set is small
//! and fixed at compile time, and a linear scan of the row is faster than a second hash.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};
use std::time::Duration;

use super::metrics::LATENCY_BUCKETS_SECONDS;
use super::text;

/// Label value that replaces a first-label value once a capped family is full.
pub(crate) const OVERFLOW_LABEL_VALUE: &str = "other";

/// What kind of metric a family is; spelled as in `# TYPE` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Label names of a family: none, one, or two.
#[derive(Debug, Clone, Copy)]
pub(crate) enum LabelNames {
    None,
    One(&'static str),
    Two(&'static str, &'static str),
}

/// Everything the scrape says about a family besides its samples.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Desc {
    pub(crate) name: &'static str,
    pub(crate) help: &'static str,
    pub(crate) kind: Kind,
    /// Emitted as a `# UNIT` line. Only set when the name ends in `_<unit>`: OpenMetrics requires
    /// that, and the classic 0.0.4 parsers (Prometheus' own lexer, `promtool`'s expfmt) treat the
    /// line as an ordinary comment. Counts (packets, sessions, commands) are dimensionless, for
    /// which OpenMetrics omits the line.
    pub(crate) unit: Option<&'static str>,
    pub(crate) labels: LabelNames,
}

impl Desc {
    fn encode_header(&self, out: &mut String) {
        out.push_str("# HELP ");
        out.push_str(self.name);
        out.push(' ');
        text::push_help(out, self.help);
        out.push_str("\n# TYPE ");
        out.push_str(self.name);
        out.push(' ');
        out.push_str(self.kind.as_str());
        out.push('\n');
        if let Some(unit) = self.unit {
            out.push_str("# UNIT ");
            out.push_str(self.name);
            out.push(' ');
            out.push_str(unit);
            out.push('\n');
        }
    }
}

/// A series: something that can encode its samples given the family name and its label pairs
/// (already escaped, `a="x",b="y"`, or empty).
pub(crate) trait Series: Default {
    fn encode(&self, out: &mut String, name: &str, labels: &str);
}

/// Writes `name{labels,extra} ` (braces omitted when there are no labels at all).
fn push_series_name(out: &mut String, name: &str, suffix: &str, labels: &str, extra: &str) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || !extra.is_empty() {
        out.push('{');
        out.push_str(labels);
        if !labels.is_empty() && !extra.is_empty() {
            out.push(',');
        }
        out.push_str(extra);
        out.push('}');
    }
    out.push(' ');
}

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        // Relaxed: a counter orders nothing; the scrape only needs an eventually exact total.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl Series for Counter {
    fn encode(&self, out: &mut String, name: &str, labels: &str) {
        push_series_name(out, name, "", labels, "");
        text::push_u64(out, self.0.load(Ordering::Relaxed));
        out.push('\n');
    }
}

/// A value that goes up and down (sessions connected, routes known, items queued).
///
/// Handed out by reference from [`Metrics`](super::Metrics); every operation is one atomic.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    /// Adds one.
    pub fn inc(&self) {
        self.add(1);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.add(-1);
    }

    /// Adds `delta` (negative to subtract); for a value shared by many owners, such as the sum
    /// of all sessions' queue lengths.
    pub fn add(&self, delta: i64) {
        self.0.fetch_add(delta, Ordering::Relaxed);
    }

    /// Sets the value outright; for a value with a single owner, such as the route count.
    pub fn set(&self, value: i64) {
        self.0.store(value, Ordering::Relaxed);
    }

    /// The current value.
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl Series for Gauge {
    fn encode(&self, out: &mut String, name: &str, labels: &str) {
        push_series_name(out, name, "", labels, "");
        text::push_i64(out, self.get());
        out.push('\n');
    }
}

/// Number of bucket slots: one per bound plus the `+Inf` overflow.
const SLOTS: usize = LATENCY_BUCKETS_SECONDS.len() + 1;

/// A latency histogram over [`LATENCY_BUCKETS_SECONDS`].
///
/// Slots hold per-bucket (non-cumulative) counts so an observation is one `fetch_add`; the
/// cumulative `le` series and `_count` are derived at scrape time, which also keeps `_count` equal
/// to the `+Inf` bucket even while observations race the scrape. The sum is kept in whole
/// nanoseconds — exact, and a plain `fetch_add` instead of a compare-and-swap loop on float bits
/// (it wraps after 584 years of accumulated latency).
#[derive(Debug)]
pub(crate) struct Histogram {
    slots: [AtomicU64; SLOTS],
    sum_nanos: AtomicU64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_nanos: AtomicU64::new(0),
        }
    }
}

impl Histogram {
    pub(crate) fn observe(&self, value: Duration) {
        let seconds = value.as_secs_f64();
        // Bounds are inclusive (`le`): the first bound >= the value takes it.
        let slot = LATENCY_BUCKETS_SECONDS.partition_point(|&bound| bound < seconds);
        if let Some(count) = self.slots.get(slot) {
            count.fetch_add(1, Ordering::Relaxed);
        }
        let nanos = u64::try_from(value.as_nanos()).unwrap_or(u64::MAX);
        self.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
    }
}

impl Series for Histogram {
    fn encode(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0u64;
        let mut le = String::with_capacity(16);
        for (i, slot) in self.slots.iter().enumerate() {
            cumulative = cumulative.saturating_add(slot.load(Ordering::Relaxed));
            le.clear();
            le.push_str("le=\"");
            match LATENCY_BUCKETS_SECONDS.get(i) {
                Some(&bound) => text::push_f64(&mut le, bound),
                None => le.push_str("+Inf"),
            }
            le.push('"');
            push_series_name(out, name, "_bucket", labels, &le);
            text::push_u64(out, cumulative);
            out.push('\n');
        }
        push_series_name(out, name, "_sum", labels, "");
        // Precision: f64 holds nanosecond totals exactly up to ~104 days of accumulated latency.
        let sum = self.sum_nanos.load(Ordering::Relaxed) as f64 / 1e9;
        text::push_f64(out, sum);
        out.push('\n');
        push_series_name(out, name, "_count", labels, "");
        text::push_u64(out, cumulative);
        out.push('\n');
    }
}

/// A metric without labels.
#[derive(Debug)]
pub(crate) struct Single<M> {
    desc: Desc,
    value: M,
}

impl<M: Series> Single<M> {
    pub(crate) fn new(desc: Desc) -> Self {
        Self {
            desc,
            value: M::default(),
        }
    }

    pub(crate) fn get(&self) -> &M {
        &self.value
    }

    pub(crate) fn encode(&self, out: &mut String) {
        self.desc.encode_header(out);
        self.value.encode(out, self.desc.name, "");
    }
}

type Rows<M> = HashMap<Box<str>, Vec<(&'static str, M)>>;

/// A labelled family: series keyed by a first label value (dynamic, e.g. a device id) and an
/// optional second one (static, e.g. an outcome; `""` when the family has a single label).
#[derive(Debug)]
pub(crate) struct Family<M> {
    desc: Desc,
    /// Maximum number of distinct first-label values; beyond it new values are recorded under
    /// [`OVERFLOW_LABEL_VALUE`]. `None` when the first label is itself a static set.
    cap: Option<usize>,
    rows: RwLock<Rows<M>>,
    overflowed: AtomicBool,
}

impl<M: Series> Family<M> {
    pub(crate) fn new(desc: Desc, cap: Option<usize>) -> Self {
        Self {
            desc,
            cap,
            rows: RwLock::new(HashMap::new()),
            overflowed: AtomicBool::new(false),
        }
    }

    /// Runs `record` on the series for (`first`, `second`), creating it on first use.
    pub(crate) fn with(&self, first: &str, second: &'static str, record: impl FnOnce(&M)) {
        {
            let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
            let key = self.resolve(&rows, first);
            if let Some(series) = find(&rows, key, second) {
                record(series);
                return;
            }
        }
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        let key = self.resolve(&rows, first);
        if key == OVERFLOW_LABEL_VALUE
            && first != OVERFLOW_LABEL_VALUE
            && !self.overflowed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                metric = self.desc.name,
                cap = self.cap,
                "metric label cap reached; further new values are recorded as \"{OVERFLOW_LABEL_VALUE}\""
            );
        }
        // Allocating the key here is fine: this path runs once per new label combination.
        let row = rows.entry(Box::from(key)).or_default();
        if let Some((_, series)) = row.iter().find(|(label, _)| *label == second) {
            record(series);
            return;
        }
        row.push((second, M::default()));
        if let Some((_, series)) = row.last() {
            record(series);
        }
    }

    /// The first-label value to record under: `first` itself if known or if there is room,
    /// otherwise the overflow value.
    fn resolve<'a>(&self, rows: &Rows<M>, first: &'a str) -> &'a str {
        let Some(cap) = self.cap else {
            return first;
        };
        if rows.contains_key(first) {
            return first;
        }
        let distinct = rows.len() - usize::from(rows.contains_key(OVERFLOW_LABEL_VALUE));
        if distinct < cap {
            first
        } else {
            OVERFLOW_LABEL_VALUE
        }
    }

    /// Appends HELP/TYPE(/UNIT) and every series, sorted by label values so scrapes are stable.
    ///
    /// Holds the read lock while encoding: recorders of existing series are not delayed (they
    /// share it); only the creation of a brand-new series waits for the scrape to finish.
    pub(crate) fn encode(&self, out: &mut String) {
        self.desc.encode_header(out);
        let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
        let mut firsts: Vec<&str> = rows.keys().map(|k| &**k).collect();
        firsts.sort_unstable();
        let mut labels = String::with_capacity(64);
        for first in firsts {
            let Some(row) = rows.get(first) else { continue };
            let mut row: Vec<&(&'static str, M)> = row.iter().collect();
            row.sort_unstable_by_key(|(second, _)| *second);
            for (second, series) in row {
                labels.clear();
                match self.desc.labels {
                    LabelNames::None => {}
                    LabelNames::One(a) => push_pair(&mut labels, a, first),
                    LabelNames::Two(a, b) => {
                        push_pair(&mut labels, a, first);
                        labels.push(',');
                        push_pair(&mut labels, b, second);
                    }
                }
                series.encode(out, self.desc.name, &labels);
            }
        }
    }
}

fn find<'r, M>(rows: &'r Rows<M>, first: &str, second: &str) -> Option<&'r M> {
    rows.get(first)?
        .iter()
        .find(|(label, _)| *label == second)
        .map(|(_, series)| series)
}

fn push_pair(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    text::push_label_value(out, value);
    out.push('"');
}
