//! HTTP overhead measurement shared by the per-framework benches: the same app with and without
//! the authentication layer, loaded in turn by `wrk` on loopback, compared as a ratio.

use std::process::Command;
use std::time::Duration;

/// One `wrk` run; returns requests per second.
///
/// # Panics
///
/// When `wrk` is not installed (Debian package `wrk`) or prints no rate: the bench must not
/// report a figure it did not measure.
pub fn requests_per_second(url: &str, header: &str, duration: Duration) -> f64 {
    let output = Command::new("wrk")
        .args(["-t1", "-c32", "--latency"])
        .arg(format!("-d{}s", duration.as_secs().max(1)))
        .args(["-H", header])
        .arg(url)
        .output()
        .expect("wrk must be installed to run the HTTP overhead benches (apt-get install wrk)");
    let text = String::from_utf8_lossy(&output.stdout);
    let non_2xx = text.lines().any(|l| l.contains("Non-2xx"));
    assert!(
        !non_2xx,
        "the bench app answered non-2xx responses:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("wrk printed no rate:\n{text}"))
}

/// Alternates runs against the app with and without the layer, then prints the medians and
/// their ratio.
pub fn compare(framework: &str, with_layer: &str, without_layer: &str, header: &str) {
    let rounds: usize = std::env::var("M2M_BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seconds: u64 = std::env::var("M2M_BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let duration = Duration::from_secs(seconds);
    // Warm both apps (and the verifier's cache) before measuring.
    requests_per_second(with_layer, header, Duration::from_secs(1));
    requests_per_second(without_layer, header, Duration::from_secs(1));
    let (mut with, mut without) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        with.push(requests_per_second(with_layer, header, duration));
        without.push(requests_per_second(without_layer, header, duration));
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (w, wo) = (median(&mut with), median(&mut without));
    println!(
        "{framework}: with layer {w:.0} req/s, without {wo:.0} req/s, ratio {:.3} (median of {rounds} × {seconds}s, wrk -t1 -c32)",
        w / wo
    );
}
