//! The automatic-rollback controller measured as a detector: seeded simulated months of one
//! house's commands replayed through the pure core ([`Ledger`] + [`Controller::evaluate`] every
//! 60 s of virtual time, canary mode, default [`RollbackSettings`]) — no runtime, no sleeping.
//!
//! Model (the numbers behind `docs/rollout-detector.md`):
//! - `rate` commands a day, Poisson arrivals with a daily rhythm (none 01:00–06:00, evening
//!   peak 17:00–23:00; [`HOUR_WEIGHTS`]): the detector's window is counted in commands, so the
//!   quiet night and the busy evening are what stretch and shrink it in a real house.
//! - Each command is on the reliable path with probability 0.10 (a 10 % canary).
//! - Legacy fails 1 % of commands (`Timeout`, 5 s); the reliable path fails 1 % before the onset
//!   (after one day of warm-up) and k × 1 % from then on. Successes take 14–240 ms (95 %) or
//!   240–1 000 ms (5 %), the device timing the ledger's histogram is built for.
//! - Every run uses the same seeds for every k and significance (a uniform draw per command
//!   decides its failure), so the curves differ by the failure rate alone.
//!
//! ```text
//! cargo bench --bench rollout_detector
//! ROLLOUT_BENCH_RUNS=50 ROLLOUT_BENCH_RATE=500 ROLLOUT_BENCH_K=10 cargo bench --bench rollout_detector
//! cargo bench --bench rollout_detector -- --sweep-significance   # or ROLLOUT_BENCH_SWEEP=1
//! ```
//!
//! Environment: `ROLLOUT_BENCH_RUNS` (runs per k = 1 scenario, default 400),
//! `ROLLOUT_BENCH_DETECT_RUNS` (runs per k > 1 scenario, default 200), `ROLLOUT_BENCH_RATE` and
//! `ROLLOUT_BENCH_K` (comma-separated subsets), `ROLLOUT_BENCH_THREADS` (default 2),
//! `ROLLOUT_BENCH_SIGNIFICANCE` (overrides the default). Prints markdown tables and writes CSV to
//! `$CARGO_TARGET_DIR/rollout_detector/` (or `target/`).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use cync_bridge::rollout::assign::{Cohort, Share};
use cync_bridge::rollout::control::{Configured, Mode, Persisted};
use cync_bridge::rollout::controller::{Controller, RollbackSettings};
use cync_bridge::rollout::detector::DEFAULT_SIGNIFICANCE;
use cync_bridge::rollout::ledger::{Ended, Ledger, MinuteCounts, Series, UnixMinute};
use cync_bridge::transport::CommandOutcome;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const MINUTE_MS: u64 = 60_000;
const DAY_MIN: u64 = 1_440;
/// 2027-01-01 00:00 UTC; the house's clock is UTC.
const T0_MS: u64 = 1_798_761_600_000;
const CANARY_SHARE: f64 = 0.10;
const LEGACY_FAILURE: f64 = 0.01;
const WARMUP_DAYS: u64 = 1;
const HORIZON_DAYS: u64 = 30;
const SEED_BASE: u64 = 0x5EED_0000;
const PRUNE_EVERY_MIN: u64 = 60;

/// Relative command rate per hour of the day: nothing 01:00–06:00, a morning bump, three times
/// the daytime rate in the evening.
const HOUR_WEIGHTS: [f64; 24] = [
    1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 3.0, 3.0,
    3.0, 3.0, 3.0, 3.0, 2.0,
];

/// One simulated house.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    per_day: f64,
    k: f64,
    significance: f64,
    /// Minutes simulated (a run also ends at its rollback).
    end_min: u64,
}

const ONSET_MIN: u64 = WARMUP_DAYS * DAY_MIN;

impl Scenario {
    fn false_alarm(per_day: f64, significance: f64) -> Scenario {
        Scenario {
            per_day,
            k: 1.0,
            significance,
            end_min: HORIZON_DAYS * DAY_MIN,
        }
    }

    fn detection(per_day: f64, k: f64, significance: f64, days_after_onset: u64) -> Scenario {
        Scenario {
            per_day,
            k,
            significance,
            end_min: ONSET_MIN + days_after_onset * DAY_MIN,
        }
    }

    fn per_minute(&self, minute: u64) -> f64 {
        let total: f64 = HOUR_WEIGHTS.iter().sum();
        let hour = usize::try_from((minute % DAY_MIN) / 60).unwrap_or(0);
        self.per_day * HOUR_WEIGHTS[hour] / (total * 60.0)
    }

    fn reliable_failure(&self, minute: u64) -> f64 {
        if minute >= ONSET_MIN {
            self.k * LEGACY_FAILURE
        } else {
            LEGACY_FAILURE
        }
    }
}

fn controller(significance: f64) -> Controller {
    let configured = Configured {
        mode: Mode::Canary,
        cohort: Cohort {
            share: Share::from_percent(CANARY_SHARE * 100.0).expect("10 % is a share"),
            ..Cohort::default()
        },
        shadow_legacy: false,
    };
    let mut settings = RollbackSettings::default();
    settings.checks.significance = significance;
    Controller::new(configured, Persisted::default(), settings)
}

/// Knuth's multiplication method; fine for the ≤ 10 a minute simulated here.
fn poisson(rng: &mut StdRng, mean: f64) -> u32 {
    let limit = (-mean).exp();
    let mut product: f64 = rng.gen();
    let mut n = 0;
    while product > limit {
        product *= rng.gen::<f64>();
        n += 1;
    }
    n
}

/// A command sent in `minute`: (end in ms since the start, series, counts). Always three draws,
/// so the stream is the same for every k.
fn command(rng: &mut StdRng, s: &Scenario, minute: u64) -> (u64, Series, MinuteCounts) {
    let sent_ms = minute * MINUTE_MS + rng.gen_range(0..MINUTE_MS);
    let reliable = rng.gen::<f64>() < CANARY_SHARE;
    let (fail_u, latency_u): (f64, f64) = (rng.gen(), rng.gen());
    let p_fail = if reliable {
        s.reliable_failure(minute)
    } else {
        LEGACY_FAILURE
    };
    let (outcome, latency_ms) = if fail_u < p_fail {
        (CommandOutcome::Timeout, 5_000.0)
    } else if latency_u < 0.95 {
        (CommandOutcome::Success, 14.0 + latency_u / 0.95 * 226.0)
    } else {
        (
            CommandOutcome::Success,
            240.0 + (latency_u - 0.95) / 0.05 * 760.0,
        )
    };
    let latency = Duration::from_secs_f64(latency_ms / 1000.0);
    let counts = MinuteCounts::of(&Ended {
        outcome,
        latency,
        attempts: 1,
        queue_full: false,
    });
    let series = if reliable {
        Series::Reliable
    } else {
        Series::Legacy
    };
    (sent_ms + latency.as_millis() as u64, series, counts)
}

/// The minute (since the start) of the first rollback, if any.
fn run(s: &Scenario, seed: u64) -> Option<u64> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut ledger = Ledger::default();
    let mut controller = controller(s.significance);
    let mut pending: Vec<(u64, Series, MinuteCounts)> = Vec::new();
    for minute in 0..s.end_min {
        for _ in 0..poisson(&mut rng, s.per_minute(minute)) {
            pending.push(command(&mut rng, s, minute));
        }
        // Evaluated at the end of the minute, with every command that has ended by then.
        let now_ms = (minute + 1) * MINUTE_MS;
        pending.retain(|(end_ms, series, counts)| {
            if *end_ms > now_ms {
                return true;
            }
            let at = UnixMinute::from_unix_ms(T0_MS + end_ms);
            ledger.add(*series, at, counts);
            false
        });
        if minute % PRUNE_EVERY_MIN == 0 {
            ledger.prune(UnixMinute::from_unix_ms(T0_MS + now_ms));
        }
        let step = controller.evaluate(&ledger, T0_MS + now_ms, true);
        if step.rollback.is_some() {
            return Some(minute + 1);
        }
    }
    None
}

/// Runs `runs` seeds of every scenario on `threads` threads; results per scenario, by seed.
fn run_all(scenarios: &[Scenario], runs: &[usize], threads: usize) -> Vec<Vec<Option<u64>>> {
    let jobs: Vec<(usize, usize)> = scenarios
        .iter()
        .enumerate()
        .flat_map(|(i, _)| (0..runs[i]).map(move |r| (i, r)))
        .collect();
    let next = AtomicUsize::new(0);
    let results = Mutex::new(
        runs.iter()
            .map(|n| vec![None; *n])
            .collect::<Vec<Vec<Option<u64>>>>(),
    );
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let j = next.fetch_add(1, Ordering::Relaxed);
                let Some(&(i, r)) = jobs.get(j) else { break };
                let outcome = run(&scenarios[i], SEED_BASE + r as u64);
                results.lock().expect("no thread panicked")[i][r] = outcome;
            });
        }
    });
    results.into_inner().expect("no thread panicked")
}

// ------------------------------------------------------------------------------ statistics

fn ln_choose(n: u64, k: u64) -> f64 {
    (1..=k)
        .map(|i| ((n - k + i) as f64).ln() - (i as f64).ln())
        .sum()
}

/// P(X ≤ x) for X ~ Binomial(n, p).
fn binom_cdf(x: u64, n: u64, p: f64) -> f64 {
    if p <= 0.0 {
        return 1.0;
    }
    if p >= 1.0 {
        return if x >= n { 1.0 } else { 0.0 };
    }
    (0..=x.min(n))
        .map(|i| (ln_choose(n, i) + i as f64 * p.ln() + (n - i) as f64 * (1.0 - p).ln()).exp())
        .sum::<f64>()
        .min(1.0)
}

/// The p at which `f(p)` (decreasing in p) crosses `target`, by bisection.
fn solve_decreasing(f: impl Fn(f64) -> f64, target: f64) -> f64 {
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..60 {
        let mid = (lo + hi) / 2.0;
        if f(mid) > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    (lo + hi) / 2.0
}

/// Clopper–Pearson (exact) 95 % interval of `x` successes in `n`.
fn clopper_pearson(x: u64, n: u64) -> (f64, f64) {
    let lower = if x == 0 {
        0.0
    } else {
        // P(X ≥ x; p) increases in p: 1 − cdf(x − 1) = 0.025.
        solve_decreasing(|p| binom_cdf(x - 1, n, p), 0.975)
    };
    let upper = if x == n {
        1.0
    } else {
        solve_decreasing(|p| binom_cdf(x, n, p), 0.025)
    };
    (lower, upper)
}

fn pct(x: u64, n: u64) -> String {
    let (lo, hi) = clopper_pearson(x, n);
    format!(
        "{:.1} % ({:.1}–{:.1})",
        100.0 * x as f64 / n.max(1) as f64,
        100.0 * lo,
        100.0 * hi
    )
}

/// Detection delays (minutes after onset) of runs that rolled back after the onset, sorted;
/// runs that rolled back before it are counted apart.
struct Detections {
    runs: u64,
    before_onset: u64,
    delays: Vec<u64>,
}

impl Detections {
    fn of(results: &[Option<u64>]) -> Detections {
        let mut delays: Vec<u64> = results
            .iter()
            .flatten()
            .filter(|m| **m > ONSET_MIN)
            .map(|m| m - ONSET_MIN)
            .collect();
        delays.sort_unstable();
        Detections {
            runs: results.len() as u64,
            before_onset: results
                .iter()
                .flatten()
                .filter(|m| **m <= ONSET_MIN)
                .count() as u64,
            delays,
        }
    }

    fn within(&self, minutes: u64) -> u64 {
        self.delays.iter().filter(|d| **d <= minutes).count() as u64
    }

    /// The q-quantile delay over all runs (a run without detection counts as never).
    fn quantile(&self, q: f64) -> String {
        let rank = ((q * self.runs as f64).ceil() as usize).max(1);
        match self.delays.get(rank - 1) {
            Some(d) => format!("{:.1} h", *d as f64 / 60.0),
            None => format!("> {HORIZON_DAYS} d"),
        }
    }
}

// ------------------------------------------------------------------------------ reports

fn env_list(name: &str, default: &[f64]) -> Vec<f64> {
    std::env::var(name)
        .ok()
        .map(|v| v.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .filter(|v: &Vec<f64>| !v.is_empty())
        .unwrap_or_else(|| default.to_vec())
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Options {
    rates: Vec<f64>,
    ks: Vec<f64>,
    runs: usize,
    detect_runs: usize,
    threads: usize,
    significance: f64,
    out: PathBuf,
}

impl Options {
    fn from_env() -> Options {
        let target = std::env::var("CARGO_TARGET_DIR").unwrap_or_else(|_| "target".into());
        Options {
            rates: env_list("ROLLOUT_BENCH_RATE", &[500.0, 5_000.0]),
            ks: env_list("ROLLOUT_BENCH_K", &[1.0, 2.0, 5.0, 10.0]),
            runs: env_usize("ROLLOUT_BENCH_RUNS", 400),
            detect_runs: env_usize("ROLLOUT_BENCH_DETECT_RUNS", 200),
            threads: env_usize("ROLLOUT_BENCH_THREADS", 2),
            significance: env_list("ROLLOUT_BENCH_SIGNIFICANCE", &[DEFAULT_SIGNIFICANCE])[0],
            out: PathBuf::from(target).join("rollout_detector"),
        }
    }
}

fn write_csv(o: &Options, name: &str, text: &str) {
    let path = o.out.join(name);
    match std::fs::create_dir_all(&o.out).and_then(|()| std::fs::write(&path, text)) {
        Ok(()) => println!("wrote {}", path.display()),
        Err(e) => eprintln!("could not write {}: {e}", path.display()),
    }
}

fn false_alarm_table(o: &Options) {
    let rates = &o.rates;
    let scenarios: Vec<Scenario> = rates
        .iter()
        .map(|r| Scenario::false_alarm(*r, o.significance))
        .collect();
    let results = run_all(&scenarios, &vec![o.runs; scenarios.len()], o.threads);
    println!("\n### k = 1: false rollbacks in {HORIZON_DAYS} days (goal ≤ 1 %)\n");
    println!("| commands/day | runs | rolled back | rate (95 % Clopper–Pearson) | median day |");
    println!("|---:|---:|---:|---|---:|");
    for (s, r) in scenarios.iter().zip(&results) {
        let mut days: Vec<u64> = r.iter().flatten().map(|m| m / DAY_MIN).collect();
        days.sort_unstable();
        let median = days
            .get(days.len() / 2)
            .map_or("–".into(), |d| d.to_string());
        let n = days.len() as u64;
        let runs = r.len() as u64;
        println!(
            "| {} | {runs} | {n} | {} | {median} |",
            s.per_day,
            pct(n, runs)
        );
    }
}

fn detection_table(o: &Options, ks: &[f64]) {
    let mut scenarios = Vec::new();
    for rate in &o.rates {
        for k in ks {
            scenarios.push(Scenario::detection(*rate, *k, o.significance, HORIZON_DAYS));
        }
    }
    let results = run_all(&scenarios, &vec![o.detect_runs; scenarios.len()], o.threads);
    println!("\n### k > 1: detection after the onset (day {WARMUP_DAYS} 00:00)\n");
    println!(
        "| commands/day | k | runs | before onset | ≤ 1 d (95 % CI) | ≤ 3 d | ≤ 30 d | median | p90 |"
    );
    println!("|---:|---:|---:|---:|---|---|---|---:|---:|");
    let mut csv = String::from("rate,k,hours_after_onset,detected\n");
    for (s, r) in scenarios.iter().zip(&results) {
        let d = Detections::of(r);
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.per_day,
            s.k,
            d.runs,
            d.before_onset,
            pct(d.within(DAY_MIN), d.runs),
            pct(d.within(3 * DAY_MIN), d.runs),
            pct(d.within(HORIZON_DAYS * DAY_MIN), d.runs),
            d.quantile(0.5),
            d.quantile(0.9),
        );
        for hour in 0..=HORIZON_DAYS * 24 {
            let frac = d.within(hour * 60) as f64 / d.runs.max(1) as f64;
            let _ = writeln!(csv, "{},{},{hour},{frac:.4}", s.per_day, s.k);
        }
    }
    write_csv(o, "detection.csv", &csv);
}

/// The decades, and 2e-5: the default (the largest value measured to meet the false-rollback goal).
const SWEEP: [f64; 5] = [1e-2, 1e-3, 1e-4, 2e-5, 1e-5];

fn sweep(o: &Options) {
    let mut scenarios = Vec::new();
    for sig in SWEEP {
        for rate in &o.rates {
            scenarios.push(Scenario::false_alarm(*rate, sig));
            scenarios.push(Scenario::detection(*rate, 10.0, sig, 1));
        }
    }
    let runs: Vec<usize> = (0..scenarios.len())
        .map(|i| if i % 2 == 0 { o.runs } else { o.detect_runs })
        .collect();
    let results = run_all(&scenarios, &runs, o.threads);
    println!(
        "\n### Significance sweep: false rollbacks in {HORIZON_DAYS} days and 10× within 1 day\n"
    );
    println!(
        "| significance | commands/day | false rollback (95 % CI) | 10× within 1 d (95 % CI) \
         | 10× runs rolled back in the warm-up |"
    );
    println!("|---:|---:|---|---|---:|");
    let mut csv = String::from(
        "significance,rate,false_runs,false_rollbacks,detect_runs,detected_1d,before_onset\n",
    );
    for (pair, res) in scenarios.chunks(2).zip(results.chunks(2)) {
        let (s, false_runs) = (pair[0], &res[0]);
        let fa = false_runs.iter().flatten().count() as u64;
        let d = Detections::of(&res[1]);
        let det = d.within(DAY_MIN);
        println!(
            "| {:e} | {} | {} | {} | {} |",
            s.significance,
            s.per_day,
            pct(fa, false_runs.len() as u64),
            pct(det, d.runs),
            d.before_onset
        );
        let _ = writeln!(
            csv,
            "{:e},{},{},{fa},{},{det},{}",
            s.significance,
            s.per_day,
            false_runs.len(),
            d.runs,
            d.before_onset
        );
    }
    write_csv(o, "sweep.csv", &csv);
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: the simulation takes minutes.
    let args: Vec<String> = std::env::args().collect();
    if !args.iter().any(|a| a == "--bench") {
        println!("rollout_detector: run with `cargo bench --bench rollout_detector`");
        return;
    }
    let o = Options::from_env();
    let started = Instant::now();
    let sweep_mode = args.iter().any(|a| a == "--sweep-significance")
        || std::env::var("ROLLOUT_BENCH_SWEEP").is_ok_and(|v| v == "1");
    println!(
        "rollout detector: rates {:?}/day, canary {} %, legacy failure {} %, significance {:e}, \
         {} threads",
        o.rates,
        CANARY_SHARE * 100.0,
        LEGACY_FAILURE * 100.0,
        o.significance,
        o.threads
    );
    if sweep_mode {
        sweep(&o);
    } else {
        if o.ks.contains(&1.0) {
            false_alarm_table(&o);
        }
        let ks: Vec<f64> = o.ks.iter().copied().filter(|k| *k > 1.0).collect();
        if !ks.is_empty() {
            detection_table(&o, &ks);
        }
    }
    println!("\nwall time {:.1} s", started.elapsed().as_secs_f64());
}
