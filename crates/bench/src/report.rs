//! The benchmark's outputs: a markdown table, JSON, and an SVG plot of time to Ready and
//! ARM writes against bindings. The plot is written by hand: two line charts do not need a
//! plotting library and its font stack.

use std::fmt::Write as _;

use crate::run::{Measurement, Strategy};

/// The table, one row per scenario and strategy.
pub fn markdown(rows: &[Measurement], header: &str) -> String {
    let mut out = format!("{header}\n\n");
    out.push_str("| scenario | strategy | bindings | pools | identities | nodes | refused | ARM writes | reads | 429s | refused writes | writes bound | write ratio | write budget | s to Ready | latency bound s | rate bound s | time ratio | reads/period | peak RSS MiB | CPU s |\n");
    out.push_str("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    for r in rows {
        let strategy = match r.strategy {
            Strategy::Kvbind => "kvbind",
            Strategy::Naive => "naive",
        };
        let per_period = r.reads_per_period.map(|p| format!("{p:.1}")).unwrap_or_else(|| "—".to_owned());
        let _ = writeln!(
            out,
            "| {} | {strategy} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0}% | {:.1} | {:.1} | {:.1} | {:.2} | {per_period} | {:.1} | {:.1} |",
            r.scenario,
            r.bindings,
            r.pools,
            r.identities,
            r.nodes,
            r.refused_bindings,
            r.writes,
            r.reads,
            r.throttled,
            r.refused_writes,
            r.writes_lower_bound,
            r.write_ratio,
            r.write_budget_share * 100.0,
            r.seconds_to_ready,
            r.critical_path_seconds,
            r.rate_bound_seconds,
            r.time_ratio,
            r.peak_rss_mib,
            r.cpu_seconds
        );
    }
    out
}

/// One series of points for the plot.
struct Series<'a> {
    label: &'a str,
    colour: &'a str,
    dashed: bool,
    points: Vec<(f64, f64)>,
}

/// Time to Ready and ARM writes against bindings, for the converge scenarios on `pools`
/// pools with distinct identities: kvbind, the naive strategy and the lower bound.
pub fn svg(rows: &[Measurement], pools: usize) -> String {
    let line = |strategy: Strategy, value: &dyn Fn(&Measurement) -> f64| -> Vec<(f64, f64)> {
        let mut points: Vec<(f64, f64)> = rows
            .iter()
            // Converge scenarios are the ones named by their binding count first.
            .filter(|r| r.strategy == strategy && r.pools == pools && r.scenario.starts_with(char::is_numeric) && r.scenario.ends_with("p-distinct"))
            .map(|r| (r.bindings as f64, value(r)))
            .collect();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        points.dedup_by(|a, b| a.0 == b.0);
        points
    };
    let time = [
        Series { label: "kvbind", colour: "#1f77b4", dashed: false, points: line(Strategy::Kvbind, &|r| r.seconds_to_ready) },
        Series { label: "naive (no batching)", colour: "#d62728", dashed: false, points: line(Strategy::Naive, &|r| r.seconds_to_ready) },
        Series { label: "bound", colour: "#2ca02c", dashed: true, points: line(Strategy::Kvbind, &|r| r.critical_path_seconds.max(r.rate_bound_seconds)) },
    ];
    let writes = [
        Series { label: "kvbind", colour: "#1f77b4", dashed: false, points: line(Strategy::Kvbind, &|r| r.writes as f64) },
        Series { label: "naive (no batching)", colour: "#d62728", dashed: false, points: line(Strategy::Naive, &|r| r.writes as f64) },
        Series { label: "lower bound", colour: "#2ca02c", dashed: true, points: line(Strategy::Kvbind, &|r| r.writes_lower_bound as f64) },
    ];
    let mut out = String::from(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"960\" height=\"400\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"960\" height=\"400\" fill=\"white\"/>\n",
    );
    chart(&mut out, 0.0, &format!("Seconds to all Ready ({pools} pools)"), &time);
    chart(&mut out, 480.0, &format!("ARM writes ({pools} pools)"), &writes);
    out.push_str("</svg>\n");
    out
}

/// A decade's grid line from `(x1, y1)` to `(x2, y2)`, labelled `value` at `(x, y)` anchored
/// as `anchor` says.
fn grid_line(out: &mut String, [x1, y1, x2, y2]: [f64; 4], (x, y, anchor): (f64, f64, &str), value: f64) {
    let _ = writeln!(
        out,
        "<line x1=\"{x1:.1}\" y1=\"{y1:.1}\" x2=\"{x2:.1}\" y2=\"{y2:.1}\" stroke=\"#eee\"/><text x=\"{x:.1}\" y=\"{y:.1}\" text-anchor=\"{anchor}\">{value}</text>"
    );
}

/// One log-log chart in a 480×400 box at `left`.
fn chart(out: &mut String, left: f64, title: &str, series: &[Series<'_>]) {
    let (x0, y0, width, height) = (left + 60.0, 40.0, 380.0, 280.0);
    let values: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().copied()).filter(|(x, y)| *x > 0.0 && *y > 0.0).collect();
    let (mut min_x, mut max_x, mut min_y, mut max_y) = (1.0f64, 10.0f64, 0.1f64, 10.0f64);
    for (x, y) in &values {
        min_x = min_x.min(*x);
        max_x = max_x.max(*x);
        min_y = min_y.min(*y);
        max_y = max_y.max(*y);
    }
    let (lx0, lx1) = (min_x.log10().floor(), max_x.log10().ceil().max(min_x.log10().floor() + 1.0));
    let (ly0, ly1) = (min_y.log10().floor(), max_y.log10().ceil().max(min_y.log10().floor() + 1.0));
    let px = |x: f64| x0 + (x.log10() - lx0) / (lx1 - lx0) * width;
    let py = |y: f64| y0 + height - (y.log10() - ly0) / (ly1 - ly0) * height;
    let _ = writeln!(out, "<text x=\"{}\" y=\"24\" font-size=\"14\" font-weight=\"bold\">{title}</text>", x0);
    let _ = writeln!(out, "<rect x=\"{x0}\" y=\"{y0}\" width=\"{width}\" height=\"{height}\" fill=\"none\" stroke=\"#999\"/>");
    for decade in (lx0 as i32)..=(lx1 as i32) {
        let x = px(10f64.powi(decade));
        grid_line(out, [x, y0, x, y0 + height], (x, y0 + height + 16.0, "middle"), 10f64.powi(decade));
    }
    for decade in (ly0 as i32)..=(ly1 as i32) {
        let y = py(10f64.powi(decade));
        grid_line(out, [x0, y, x0 + width, y], (x0 - 6.0, y + 4.0, "end"), 10f64.powi(decade));
    }
    let _ = writeln!(out, "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">bindings</text>", x0 + width / 2.0, y0 + height + 34.0);
    for (i, s) in series.iter().enumerate() {
        let points: Vec<String> = s.points.iter().filter(|(x, y)| *x > 0.0 && *y > 0.0).map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y))).collect();
        let dash = if s.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        if !points.is_empty() {
            let _ = writeln!(out, "<polyline points=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"2\"{dash}/>", points.join(" "), s.colour);
            for p in &points {
                let (x, y) = p.split_once(',').unwrap_or_default();
                let _ = writeln!(out, "<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{}\"/>", s.colour);
            }
        }
        let ly = y0 + height + 52.0;
        let lx = x0 + i as f64 * 130.0;
        let _ = writeln!(
            out,
            "<line x1=\"{lx}\" y1=\"{ly}\" x2=\"{}\" y2=\"{ly}\" stroke=\"{}\" stroke-width=\"2\"{dash}/><text x=\"{}\" y=\"{}\">{}</text>",
            lx + 20.0,
            s.colour,
            lx + 24.0,
            ly + 4.0,
            s.label
        );
    }
}
