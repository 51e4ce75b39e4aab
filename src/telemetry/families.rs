//! Cached exporter handles per label combination, with the `device_id` cardinality cap.
//!
//! Why it exists: asking the exporter for a series (`Recorder::register_counter`) builds an owned
//! `Key` (one allocation per dynamic label) and hashes it into a sharded map — on every packet that
//! would cost several times what the increment does. A family here keeps the handle it got the
//! first time, so recording an existing series is a read lock, one hash of the device id, a short
//! scan of its row and the handle's atomic. Only the first sighting of a combination takes the
//! write lock and talks to the exporter.
//!
//! It owns no values (the exporter does) and never panics: a poisoned lock is recovered, since
//! only whole handles are ever inserted under it. The second label is always a `&'static str` from
//! a fixed vocabulary, so a linear scan of a row beats a second hash.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{PoisonError, RwLock};

use metrics::{Key, Label, Level, Metadata, Recorder};
use metrics_exporter_prometheus::PrometheusRecorder;

/// Label value that replaces a `device_id` once a capped family is full.
pub(crate) const OVERFLOW_LABEL_VALUE: &str = "other";

/// What the exporter is told about the call site; it ignores it, but the trait requires one.
const METADATA: Metadata<'static> =
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()));

/// A handle kind the exporter can hand out for a key.
pub(crate) trait Handle: Clone {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self;
}

impl Handle for metrics::Counter {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self {
        recorder.register_counter(key, &METADATA)
    }
}

impl Handle for metrics::Histogram {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self {
        recorder.register_histogram(key, &METADATA)
    }
}

/// Registers the series of `name` without labels.
impl Handle for metrics::Gauge {
    fn register(recorder: &PrometheusRecorder, key: &Key) -> Self {
        recorder.register_gauge(key, &METADATA)
    }
}

pub(crate) fn single<M: Handle>(recorder: &PrometheusRecorder, name: &'static str) -> M {
    M::register(recorder, &Key::from_static_name(name))
}

/// A value that goes up and down (sessions connected, routes known, items queued).
///
/// Handed out by reference from [`Metrics`](super::Metrics); every operation is one atomic
/// update of the exporter's value (a compare-and-swap on its float bits).
#[derive(Clone)]
pub struct Gauge(metrics::Gauge);

impl std::fmt::Debug for Gauge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gauge").finish_non_exhaustive()
    }
}

impl Gauge {
    pub(crate) fn register(recorder: &PrometheusRecorder, name: &'static str) -> Self {
        Self(recorder.register_gauge(&Key::from_static_name(name), &METADATA))
    }

    /// Adds one.
    pub fn inc(&self) {
        self.0.increment(1.0);
    }

    /// Subtracts one.
    pub fn dec(&self) {
        self.0.decrement(1.0);
    }

    /// Adds `delta` (negative to subtract); for a value shared by many owners, such as the sum
    /// of all sessions' queue lengths. Exact while the value stays within ±2^53.
    #[allow(clippy::cast_precision_loss)]
    pub fn add(&self, delta: i64) {
        self.0.increment(delta as f64);
    }

    /// Sets the value outright; for a value with a single owner, such as the route count.
    #[allow(clippy::cast_precision_loss)]
    pub fn set(&self, value: i64) {
        self.0.set(value as f64);
    }
}

/// foldhash instead of SipHash: the lookup of a device id is most of a recording's cost, a
/// family holds at most [`MAX_DEVICE_IDS`](super::MAX_DEVICE_IDS) keys, and each map has its
/// own random seed, so crafted collisions can at worst slow one capped family.
type Rows<M> = foldhash::HashMap<Box<str>, Vec<(&'static str, M)>>;

/// A labelled family: handles keyed by a first label value (a device id, or a static value) and an
/// optional second one (static; `""` when the family has a single label).
pub(crate) struct Family<M> {
    name: &'static str,
    first: &'static str,
    second: Option<&'static str>,
    /// Maximum number of distinct first-label values; beyond it new values are recorded under
    /// [`OVERFLOW_LABEL_VALUE`]. `None` when the first label is itself a static set.
    cap: Option<usize>,
    rows: RwLock<Rows<M>>,
    overflowed: AtomicBool,
}

impl<M: Handle> Family<M> {
    pub(crate) fn new(
        name: &'static str,
        first: &'static str,
        second: Option<&'static str>,
        cap: Option<usize>,
    ) -> Self {
        Self {
            name,
            first,
            second,
            cap,
            rows: RwLock::new(Rows::default()),
            overflowed: AtomicBool::new(false),
        }
    }

    /// Runs `record` on the handle for (`first`, `second`), registering it on first use.
    pub(crate) fn with(
        &self,
        recorder: &PrometheusRecorder,
        first: &str,
        second: &'static str,
        record: impl FnOnce(&M),
    ) {
        {
            let rows = self.rows.read().unwrap_or_else(PoisonError::into_inner);
            let key = self.resolve(&rows, first);
            if let Some(handle) = find(&rows, key, second) {
                record(handle);
                return;
            }
        }
        let handle = self.create(recorder, first, second);
        record(&handle);
    }

    /// Registers every (`first`, `second`) pair at zero, so the series exist before any event.
    pub(crate) fn init(
        &self,
        recorder: &PrometheusRecorder,
        firsts: &[&str],
        seconds: &[&'static str],
    ) {
        for first in firsts {
            for second in seconds {
                self.create(recorder, first, second);
            }
        }
    }

    /// The slow path: takes the write lock, applies the cap, registers with the exporter once.
    fn create(&self, recorder: &PrometheusRecorder, first: &str, second: &'static str) -> M {
        let mut rows = self.rows.write().unwrap_or_else(PoisonError::into_inner);
        let key = self.resolve(&rows, first);
        if key == OVERFLOW_LABEL_VALUE
            && first != OVERFLOW_LABEL_VALUE
            && !self.overflowed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                metric = self.name,
                cap = self.cap,
                "metric label cap reached; further new values are recorded as \"{OVERFLOW_LABEL_VALUE}\""
            );
        }
        if let Some(handle) = find(&rows, key, second) {
            return handle.clone();
        }
        let mut labels = vec![Label::new(self.first, key.to_owned())];
        if let Some(name) = self.second {
            labels.push(Label::new(name, second));
        }
        let handle = M::register(recorder, &Key::from_parts(self.name, labels));
        rows.entry(Box::from(key))
            .or_default()
            .push((second, handle.clone()));
        handle
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
}

fn find<'r, M>(rows: &'r Rows<M>, first: &str, second: &str) -> Option<&'r M> {
    rows.get(first)?
        .iter()
        .find(|(label, _)| *label == second)
        .map(|(_, handle)| handle)
}
