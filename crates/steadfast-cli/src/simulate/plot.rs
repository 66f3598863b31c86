//! `--plot FILE.svg`: each run's latency tail and its load on the dependency, side by side.

use std::path::Path;

use plotters::prelude::*;

use super::Measured;

const FONT: &str = "sans-serif";

/// Points of the complementary CDF (the share of calls at least as slow as x), from 1 down
/// to 10⁻⁴, spaced evenly on its log axis so the tail is drawn as finely as the body.
fn ccdf(sorted_ms: &[f64]) -> Vec<(f64, f64)> {
    let n = sorted_ms.len();
    let mut ks: Vec<usize> = (0..=400)
        .map(|j| {
            let share = 10f64.powf(-4.0 * f64::from(j) / 400.0);
            n - ((n as f64 * share).ceil() as usize).clamp(1, n)
        })
        .collect();
    ks.dedup();
    ks.into_iter()
        .map(|k| (sorted_ms[k].max(1e-3), (n - k) as f64 / n as f64))
        .collect()
}

/// Draws the SVG: left, each run's latency as a complementary CDF (log–log); right, the
/// attempts reaching the dependency each second.
pub(super) fn draw(path: &Path, title: &str, runs: &[Measured]) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (1200, 540)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, (FONT, 18))?;
    let (left, right) = root.split_horizontally(600);
    let color = |i: usize| Palette99::pick(i).to_rgba();

    let with_calls = || runs.iter().filter(|m| !m.latencies_ms.is_empty());
    let hi = with_calls()
        .filter_map(|m| m.latencies_ms.last().copied())
        .fold(1.0, f64::max)
        * 1.2;
    let lo = with_calls()
        .filter_map(|m| m.latencies_ms.first().copied())
        .fold(hi, f64::min)
        .max(1e-3)
        * 0.8;
    let mut chart = ChartBuilder::on(&left)
        .caption("latency: share of calls slower than x", (FONT, 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo..hi).log_scale(), (1e-4f64..1.0).log_scale())?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|v| format!("{v}"))
        .y_label_formatter(&|v| format!("{v}"))
        .x_desc("latency (ms)")
        .y_desc("share of calls (1 − CDF)")
        .draw()?;
    for (i, m) in runs.iter().enumerate() {
        if m.latencies_ms.is_empty() {
            continue;
        }
        let c = color(i);
        chart
            .draw_series(LineSeries::new(ccdf(&m.latencies_ms), c.stroke_width(2)))?
            .label(m.report.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;

    let seconds = runs
        .iter()
        .map(|m| m.per_second.len())
        .max()
        .unwrap_or(0)
        .max(1);
    let peak = runs
        .iter()
        .flat_map(|m| m.per_second.iter().copied())
        .max()
        .unwrap_or(0)
        .max(1) as f64
        * 1.1;
    let mut chart = ChartBuilder::on(&right)
        .caption("attempts reaching the dependency", (FONT, 15))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..seconds as f64, 0f64..peak)?;
    chart
        .configure_mesh()
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .x_desc("time (s)")
        .y_desc("attempts per second")
        .draw()?;
    for (i, m) in runs.iter().enumerate() {
        let c = color(i);
        let points = m
            .per_second
            .iter()
            .enumerate()
            .map(|(t, &n)| (t as f64 + 0.5, n as f64));
        chart
            .draw_series(LineSeries::new(points, c.stroke_width(2)))?
            .label(m.report.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
