//! The results table, the notes on anything odd, and the verdict against the targets.

use std::time::Duration;

use crate::bridge::{load_average, BridgeProcess, Usage};
use crate::commands::RateReport;
use crate::wall::WallReport;
use crate::PYTHON;

fn pct(sorted: &[Duration], p: f64) -> Option<Duration> {
    let last = sorted.len().checked_sub(1)?;
    Some(sorted[((sorted.len() as f64 * p) as usize).min(last)])
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(
        || "-".to_owned(),
        |d| format!("{:.3}", d.as_secs_f64() * 1e3),
    )
}

pub fn print_table(
    bridge: &BridgeProcess,
    idle: &Usage,
    rows: &[(u32, RateReport, Usage)],
    wall: &WallReport,
) {
    println!("load average after: {}", load_average());
    let notes = print_rates(idle, rows);
    print_broker_split(rows);
    print_wall(wall);
    for n in &notes {
        println!("note: {n}");
    }
    let warnings = bridge.log_lines();
    if warnings > 0 {
        println!(
            "note: the bridge logged {warnings} warning/error lines ({})",
            bridge.log.display()
        );
    }
    println!();
    print_targets(idle, rows);
}

/// One row per rate (and idle): commands, latencies, CPU and memory; returns the notes on
/// rates not reached and commands applied wrongly.
fn print_rates(idle: &Usage, rows: &[(u32, RateReport, Usage)]) -> Vec<String> {
    println!();
    println!(
        "{:<8} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9} {:>8} {:>8}",
        "rate",
        "sent",
        "appl.",
        "lost",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "CPU %core",
        "RSS MB",
        "peak MB"
    );
    println!(
        "{:<8} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>8.1} {:>8.1}",
        "idle", "-", "-", "-", "-", "-", "-", "-", idle.cpu_percent, idle.rss_mb, idle.hwm_mb
    );
    let mut notes = Vec::new();
    for (rate, r, u) in rows {
        println!(
            "{:<8} {:>6} {:>6} {:>5} {:>8} {:>8} {:>8} {:>8} {:>9.1} {:>8.1} {:>8.1}",
            format!("{rate}/s"),
            r.sent,
            r.latencies.len(),
            r.lost,
            ms(pct(&r.latencies, 0.50)),
            ms(pct(&r.latencies, 0.95)),
            ms(pct(&r.latencies, 0.99)),
            ms(r.latencies.last().copied()),
            u.cpu_percent,
            u.rss_mb,
            u.hwm_mb
        );
        let achieved = r.sent as f64 / r.elapsed.as_secs_f64();
        if achieved < f64::from(*rate) * 0.95 {
            notes.push(format!("{rate}/s: only {achieved:.0}/s were published"));
        }
        if r.mismatched + r.unexpected + r.lagged > 0 {
            notes.push(format!(
                "{rate}/s: {} applied with the wrong on/off, {} applied unasked, {} events lagged",
                r.mismatched, r.unexpected, r.lagged
            ));
        }
    }
    notes
}

fn print_broker_split(rows: &[(u32, RateReport, Usage)]) {
    println!();
    println!("split at a second subscriber of the command topic (the broker's delivery):");
    for (rate, r, _) in rows {
        println!(
            "  {rate:>3}/s publish → subscriber p50 {} p99 {} max {} ms; subscriber → applied \
             (bridge + device) p50 {} p99 {} max {} ms",
            ms(pct(&r.hops, 0.50)),
            ms(pct(&r.hops, 0.99)),
            ms(r.hops.last().copied()),
            ms(pct(&r.after_broker, 0.50)),
            ms(pct(&r.after_broker, 0.99)),
            ms(r.after_broker.last().copied()),
        );
    }
}

fn print_wall(wall: &WallReport) {
    println!(
        "wall switch → MQTT state: {} samples, p50 {} ms, p99 {} ms, max {} ms, {} missed",
        wall.latencies.len(),
        ms(pct(&wall.latencies, 0.50)),
        ms(pct(&wall.latencies, 0.99)),
        ms(wall.latencies.last().copied()),
        wall.missed
    );
}

fn print_targets(idle: &Usage, rows: &[(u32, RateReport, Usage)]) {
    let p99_ok = rows
        .iter()
        .all(|(_, r, _)| r.lost == 0 && pct(&r.latencies, 0.99) <= Some(Duration::from_millis(1)));
    let cpu_ok = rows
        .iter()
        .filter(|(rate, _, _)| *rate == 400)
        .all(|(_, _, u)| u.cpu_percent <= 20.0);
    let rss_ok = rows.iter().all(|(_, _, u)| u.hwm_mb <= 20.0) && idle.hwm_mb <= 20.0;
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    println!(
        "targets: p99 ≤ 1 ms at every rate, none lost: {}; ≤ 20% of a core at 400/s: {}; \
         ≤ 20 MB RSS (peak): {}",
        verdict(p99_ok),
        verdict(cpu_ok),
        verdict(rss_ok)
    );
    println!("compare: {PYTHON}");
}
