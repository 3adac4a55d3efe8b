//! A latency-by-percentile plot as a standalone SVG, drawn by hand (no
//! plotting crate): the classic HdrHistogram chart, x = percentile on a log
//! scale of 1/(1-percentile), y = latency in ms.
//!
//! Invariant: the output is a complete SVG document with every text node
//! XML-escaped, viewable in any browser; an empty histogram draws axes only.

use std::fmt::Write as _;

use hdrhistogram::Histogram;

const W: f64 = 900.0;
const H: f64 = 560.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 60.0;
const BOTTOM: f64 = 70.0;
const COLORS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The smallest "nice" number (1, 2, 5 × 10^k) at or above `v`.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * mag)
}

/// Points (x = log10(1/(1-q)), y = ms) of a nanosecond histogram.
fn points(h: &Histogram<u64>, xmax: f64) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(5)
        .map(|v| {
            let q = v.quantile_iterated_to();
            let x = if q >= 1.0 {
                xmax
            } else {
                (1.0 / (1.0 - q)).log10().min(xmax)
            };
            (x, v.value_iterated_to() as f64 / 1e6)
        })
        .collect()
}

/// Draws `series` (name, ns histogram) under `title`.
pub fn latency_svg(title: &str, series: &[(&str, &Histogram<u64>)]) -> String {
    let count = series.iter().map(|(_, h)| h.len()).max().unwrap_or(0);
    // Show at least up to 99.999%, more if the sample count resolves it.
    let xmax = ((count.max(1) as f64).log10().ceil()).clamp(5.0, 7.0);
    let max_ms = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(_, h)| h.max() as f64 / 1e6)
        .fold(0.0, f64::max);
    let ymax = nice_ceiling(max_ms * 1.05);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let sx = |x: f64| LEFT + x / xmax * pw;
    let sy = |y: f64| TOP + ph - y / ymax * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="30" text-anchor="middle" font-size="16">{}</text>"#,
        W / 2.0,
        escape(title)
    );
    // Horizontal grid and y labels.
    for i in 0..=5 {
        let v = ymax * f64::from(i) / 5.0;
        let y = sy(v);
        let _ = writeln!(
            s,
            r##"<line x1="{LEFT}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/>"##,
            LEFT + pw
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            y + 4.0,
            trim(v)
        );
    }
    // Vertical grid and percentile labels.
    for k in 0..=(xmax as u32) {
        let x = sx(f64::from(k));
        let label = if k == 0 {
            "0%".to_string()
        } else {
            format!("{}%", trim(100.0 - 100.0 / 10f64.powi(k as i32)))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{x:.1}" y1="{TOP}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/>"##,
            TOP + ph
        );
        let _ = writeln!(
            s,
            r#"<text x="{x:.1}" y="{:.1}" text-anchor="middle">{label}</text>"#,
            TOP + ph + 18.0
        );
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">percentile</text>"#,
        LEFT + pw / 2.0,
        H - 20.0
    );
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.1}" text-anchor="middle" transform="rotate(-90 20 {:.1})">latency (ms)</text>"#,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (i, (name, h)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let pts: Vec<String> = points(h, xmax)
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
            .collect();
        if !pts.is_empty() {
            let _ = writeln!(
                s,
                r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        let ly = TOP + 16.0 + 18.0 * i as f64;
        let lx = LEFT + 12.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="{ly}" x2="{}" y2="{ly}" stroke="{color}" stroke-width="3"/>"#,
            lx + 24.0
        );
        let label = format!(
            "{name} (n={}, max {:.3} ms)",
            h.len(),
            if h.is_empty() {
                0.0
            } else {
                h.max() as f64 / 1e6
            }
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}">{}</text>"#,
            lx + 30.0,
            ly + 4.0,
            escape(&label)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Formats without trailing zeros (`99.9`, `0.5`, `20`).
fn trim(v: f64) -> String {
    let t = format!("{v:.6}");
    let t = t.trim_end_matches('0').trim_end_matches('.');
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::latency_histogram;

    #[test]
    fn plot_is_an_svg_with_percentile_ticks_and_escaped_title() {
        let mut h = latency_histogram();
        for v in 1..=1000u64 {
            h.saturating_record(v * 10_000);
        }
        let svg = latency_svg("fanout <a&b>", &[("fast", &h)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        for tick in ["0%", "90%", "99%", "99.9%", "99.99%", "99.999%"] {
            assert!(svg.contains(&format!(">{tick}<")), "missing tick {tick}");
        }
        assert!(svg.contains("fanout &lt;a&amp;b&gt;"));
        assert!(svg.contains("<polyline"));
    }

    #[test]
    fn empty_histogram_draws_axes_only() {
        let h = latency_histogram();
        let svg = latency_svg("empty", &[("fast", &h)]);
        assert!(!svg.contains("<polyline"));
        assert!(svg.contains("latency (ms)"));
    }

    #[test]
    fn nice_ceiling_rounds_up_to_1_2_5() {
        assert_eq!(nice_ceiling(0.7), 1.0);
        assert_eq!(nice_ceiling(1.3), 2.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(51.0), 100.0);
    }
}
