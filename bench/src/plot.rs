//! PNG plots of a run, drawn with plotters: the latency distribution (latency by percentile, on
//! a "number of nines" axis) and throughput against the offered rate (1:1 and group fan-out).
//! Text needs a TrueType font, loaded at run time (DejaVu Sans, Debian's fonts-dejavu-core).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::{Curve, Report};

pub const FONT_PATH: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (1000, 600);

fn load_font() -> Result<()> {
    static LOADED: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    LOADED
        .get_or_init(|| {
            let bytes = std::fs::read(FONT_PATH)
                .map_err(|e| format!("{FONT_PATH}: {e} (install fonts-dejavu-core)"))?;
            // plotters keeps fonts for the life of the process.
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            register_font(FONT, FontStyle::Normal, bytes).map_err(|_| "invalid font".to_owned())
        })
        .clone()
        .map_err(|e| anyhow!(e))
}

fn color(i: usize) -> RGBColor {
    const COLORS: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    COLORS[i % COLORS.len()]
}

/// Percentile → "nines": 90 → 1, 99 → 2, 99.9 → 3 (100 is drawn at 5).
fn nines(percentile: f64) -> f64 {
    let rest = (1.0 - percentile / 100.0).max(1e-5);
    -rest.log10()
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing: {e:?}")
}

/// Writes the plots into `dir` as `<prefix>-latency.png`, `<prefix>-throughput.png` and
/// `<prefix>-fanout.png`; returns the files written.
pub fn draw_all(report: &Report, dir: &Path, prefix: &str) -> Result<Vec<PathBuf>> {
    load_font()?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut written = Vec::new();
    if !report.latency_distributions.is_empty() {
        let path = dir.join(format!("{prefix}-latency.png"));
        latency(report, &path)?;
        written.push(path);
    }
    let (one_to_one, fanout): (Vec<Curve>, Vec<Curve>) = report
        .throughput_curves
        .iter()
        .cloned()
        .partition(|c| !c.name.contains("M="));
    let plots = [
        (
            one_to_one,
            "throughput",
            "1:1 throughput vs offered rate (log-log)",
            "offered msg/s (window runs: at the rate achieved)",
            "acked msg/s",
        ),
        (
            fanout,
            "fanout",
            "Group fan-out: deliveries vs offered (log-log)",
            "offered deliveries/s",
            "deliveries/s",
        ),
    ];
    for (curves, name, title, x_label, y_label) in plots {
        if !curves.is_empty() {
            let path = dir.join(format!("{prefix}-{name}.png"));
            throughput(&curves, &path, title, x_label, y_label)?;
            written.push(path);
        }
    }
    Ok(written)
}

fn latency(report: &Report, path: &Path) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let max_ms = report
        .latency_distributions
        .iter()
        .flat_map(|d| d.percentiles.iter().map(|p| p.1))
        .fold(1.0f64, f64::max);
    let mut chart = ChartBuilder::on(&root)
        .caption("Send → receive latency by percentile", (FONT, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d(0.25f64..5.0f64, (0.05f64..max_ms * 1.5).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (ms, log scale)")
        .x_labels(6)
        .x_label_formatter(&|x| {
            let p = 100.0 * (1.0 - 10f64.powf(-x));
            if p >= 99.999 {
                "max".to_owned()
            } else {
                format!("{p:.3}")
                    .trim_end_matches('0')
                    .trim_end_matches('.')
                    .to_owned()
                    + "%"
            }
        })
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(err)?;
    for (i, dist) in report.latency_distributions.iter().enumerate() {
        let points: Vec<(f64, f64)> = dist
            .percentiles
            .iter()
            .map(|&(p, ms)| (nines(p), ms.max(0.05)))
            .collect();
        line_with_points(&mut chart, points, color(i), &dist.name, 3)?;
    }
    legend(&mut chart, SeriesLabelPosition::LowerRight)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One named curve: a line through its points, each point marked with a dot of `radius`.
fn line_with_points<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    points: Vec<(f64, f64)>,
    style: RGBColor,
    name: &str,
    radius: i32,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate<From = (f64, f64)>,
{
    chart
        .draw_series(LineSeries::new(points.clone(), style.stroke_width(2)))
        .map_err(err)?
        .label(name)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style.stroke_width(2)));
    chart
        .draw_series(
            points
                .into_iter()
                .map(|p| Circle::new(p, radius, style.filled())),
        )
        .map_err(err)?;
    Ok(())
}

/// The legend of the curves, at `position`.
fn legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()
        .map_err(err)
}

fn throughput(
    curves: &[Curve],
    path: &Path,
    title: &str,
    x_desc: &str,
    y_desc: &str,
) -> Result<()> {
    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let values = || {
        curves
            .iter()
            .flat_map(|c| c.points.iter().flat_map(|p| [p.0, p.1]))
    };
    let max = values().fold(1.0f64, f64::max) * 1.5;
    let min = (values().filter(|v| *v > 0.0).fold(max, f64::min) / 1.5).max(0.1);
    let mut chart = ChartBuilder::on(&root)
        .caption(title, (FONT, 24))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(80)
        .build_cartesian_2d((min..max).log_scale(), (min..max).log_scale())
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_labels(6)
        .y_labels(6)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(WHITE)
        .x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FONT, 14))
        .axis_desc_style((FONT, 16))
        .draw()
        .map_err(err)?;
    chart
        .draw_series(LineSeries::new(
            vec![(0.0, 0.0), (max, max)],
            BLACK.mix(0.3),
        ))
        .map_err(err)?
        .label("offered = achieved")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.3)));
    for (i, curve) in curves.iter().enumerate() {
        let mut points = curve.points.clone();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        line_with_points(&mut chart, points, color(i), &curve.name, 4)?;
    }
    legend(&mut chart, SeriesLabelPosition::UpperLeft)?;
    root.present().map_err(err)?;
    Ok(())
}
