//! SVG charts of a run, drawn with `plotters`.
//!
//! - Latency by percentile: the classic HdrHistogram chart, x = 1/(1−p) on a
//!   log axis labelled 0%, 90%, 99%, 99.9%…, one line per step. It shows the
//!   whole distribution, tail included, which averages and a single p99 hide.
//! - Over time: deliveries per second and p50/p99 latency per second of the
//!   measured window, to see warm-up effects, GC-like stalls or drift.
//! - [`stacked`]: any series over time, one chart above the other (the
//!   timeline above, and the soak's RSS, open files and tasks).

use std::path::Path;

use anyhow::{anyhow, Result};
use hdrhistogram::Histogram;
use plotters::prelude::*;

use crate::report::IntervalPoint;

const SIZE: (u32, u32) = (1000, 620);
/// The deepest percentile plotted: 99.999% (x = 10^5).
const MAX_X: f64 = 1e5;

fn percentile_label(x: f64) -> String {
    let p = 100.0 * (1.0 - 1.0 / x);
    let decimals = (x.log10().round() as usize).saturating_sub(2);
    format!("{p:.decimals$}%")
}

/// The bottom of the latency axis (ms): 10 µs.
const Y_MIN_MS: f64 = 0.01;

/// Draws latency by percentile for each `(label, histogram in ns)`.
pub fn latency_by_percentile(
    path: &Path,
    title: &str,
    series: &[(String, &Histogram<u64>)],
) -> Result<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = series
        .iter()
        .filter(|(_, h)| !h.is_empty())
        .map(|(label, h)| {
            let points = h
                .iter_quantiles(5)
                .map(|v| (v.quantile_iterated_to(), v.value_iterated_to() as f64 / 1e6))
                .filter(|(q, _)| *q < 1.0)
                .map(|(q, ms)| ((1.0 / (1.0 - q)).min(MAX_X), ms.max(Y_MIN_MS)))
                .collect();
            (label.clone(), points)
        })
        .collect();
    let y_max = series
        .iter()
        .map(|(_, h)| h.value_at_quantile(1.0 - 1.0 / MAX_X) as f64 / 1e6)
        .fold(0.0, f64::max)
        .max(0.01)
        * 1.1;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        // Log on both axes, as HdrHistogram's own plotter can: an overloaded
        // step's seconds would otherwise flatten the others' milliseconds.
        .build_cartesian_2d((1f64..MAX_X).log_scale(), (Y_MIN_MS..y_max).log_scale())
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms)")
        .x_label_formatter(&|x| percentile_label(*x))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    let lines = curves
        .into_iter()
        .enumerate()
        .map(|(i, (label, points))| (label, Palette99::pick(i).to_rgba(), points))
        .collect();
    draw_lines(&mut chart, lines, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// Draws deliveries/s (top) and p50/p99 latency (bottom) per second.
pub fn timeline(path: &Path, title: &str, points: &[IntervalPoint]) -> Result<()> {
    let series =
        |pick: fn(&IntervalPoint) -> f64| points.iter().map(|p| (p.t_s, pick(p))).collect();
    let panels = [
        Panel {
            y_desc: "deliveries/s".to_owned(),
            lines: vec![(
                "deliveries/s".to_owned(),
                BLUE.to_rgba(),
                series(|p| p.delivered_per_s),
            )],
        },
        Panel {
            y_desc: "latency (ms)".to_owned(),
            lines: vec![
                ("p50".to_owned(), GREEN.to_rgba(), series(|p| p.p50_ms)),
                ("p99".to_owned(), RED.to_rgba(), series(|p| p.p99_ms)),
            ],
        },
    ];
    stacked(path, title, "seconds into the measured window", &panels)
}

/// One chart of a [`stacked`] figure: its y-axis label and its lines.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The y-axis label.
    pub y_desc: String,
    /// The lines drawn (with a legend).
    pub lines: Vec<Line>,
}

/// Draws `panels` one above the other over a shared x axis (labelled
/// `x_desc` under the bottom one), each y axis from 0 to 10 % over its
/// largest value.
pub fn stacked(path: &Path, title: &str, x_desc: &str, panels: &[Panel]) -> Result<()> {
    let height = SIZE.1 / 2 * panels.len().max(1) as u32;
    let root = SVGBackend::new(path, (SIZE.0, height)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let points = || panels.iter().flat_map(|p| &p.lines).flat_map(|l| &l.2);
    let x_max = points().map(|p| p.0).fold(1.0, f64::max);
    let areas = root.split_evenly((panels.len().max(1), 1));
    for (i, (panel, area)) in panels.iter().zip(&areas).enumerate() {
        let (first, last) = (i == 0, i + 1 == panels.len());
        let y_max = panel
            .lines
            .iter()
            .flat_map(|l| &l.2)
            .map(|p| p.1)
            .fold(0.01, f64::max)
            * 1.1;
        let mut builder = ChartBuilder::on(area);
        if first {
            builder.caption(title, ("sans-serif", 20));
        }
        let mut chart = builder
            .margin(10)
            .x_label_area_size(if last { 40 } else { 30 })
            .y_label_area_size(80)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)
            .map_err(|e| anyhow!("{e}"))?;
        let mut mesh = chart.configure_mesh();
        mesh.y_desc(panel.y_desc.as_str());
        if last {
            mesh.x_desc(x_desc);
        }
        mesh.draw().map_err(|e| anyhow!("{e}"))?;
        draw_lines(
            &mut chart,
            panel.lines.clone(),
            SeriesLabelPosition::LowerRight,
        )?;
    }
    root.present().map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

/// A labelled line: legend text, colour, points.
pub type Line = (String, RGBAColor, Vec<(f64, f64)>);

/// Draws labelled lines and their legend on a chart with an f64 y axis.
fn draw_lines<'a, X: Ranged<ValueType = f64>, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    lines: Vec<Line>,
    legend_at: SeriesLabelPosition,
) -> Result<()> {
    for (label, color, points) in lines {
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(label)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(legend_at)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::latency::new_histogram;

    #[test]
    fn labels_name_the_percentiles() {
        assert_eq!(percentile_label(1.0), "0%");
        assert_eq!(percentile_label(10.0), "90%");
        assert_eq!(percentile_label(100.0), "99%");
        assert_eq!(percentile_label(1000.0), "99.9%");
        assert_eq!(percentile_label(100_000.0), "99.999%");
    }

    #[test]
    fn charts_render_to_svg() {
        let dir = tempfile::tempdir().unwrap();
        let mut h = new_histogram();
        for i in 1..10_000u64 {
            h.record(i * 1000).unwrap();
        }
        let lat = dir.path().join("lat.svg");
        latency_by_percentile(
            &lat,
            "test",
            &[("5k/s".into(), &h), ("empty".into(), &new_histogram())],
        )
        .unwrap();
        let svg = std::fs::read_to_string(&lat).unwrap();
        assert!(svg.contains("<svg") && svg.contains("99.9%") && svg.contains("5k/s"));
        let points: Vec<IntervalPoint> = (1..=5)
            .map(|t| IntervalPoint {
                t_s: t as f64,
                delivered_per_s: 1000.0,
                p50_ms: 1.0,
                p99_ms: 2.0,
                max_ms: 3.0,
            })
            .collect();
        let tl = dir.path().join("tl.svg");
        timeline(&tl, "test", &points).unwrap();
        assert!(std::fs::read_to_string(&tl)
            .unwrap()
            .contains("deliveries/s"));
        timeline(&tl, "empty", &[]).unwrap();
    }
}
