//! PNG plots of the sweeps (plotters' bitmap backend; text with a system TrueType font).

use std::path::Path;
use std::sync::OnceLock;

use plotters::prelude::*;

use crate::error::BenchError;

/// Fonts tried in order; the first readable one is registered as "sans-serif".
const FONTS: [&str; 4] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
];

/// Registers a font once; `Err` says why plots cannot carry text.
fn font() -> Result<(), String> {
    static FONT: OnceLock<Result<(), String>> = OnceLock::new();
    FONT.get_or_init(|| {
        let bytes = FONTS
            .iter()
            .find_map(|p| std::fs::read(p).ok())
            .ok_or_else(|| format!("no TrueType font found (tried {})", FONTS.join(", ")))?;
        // plotters keeps fonts for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "the font file could not be parsed".to_string())
    })
    .clone()
}

/// One panel of a figure: a single measured quantity against the swept setting.
#[derive(Debug, Clone)]
pub struct Panel {
    /// The quantity and its unit, shown above and beside the panel.
    pub y_label: String,
    /// (x, y) points.
    pub points: Vec<(f64, f64)>,
}

/// A panel with several named lines (a legend names them).
#[derive(Debug, Clone)]
pub struct SeriesPanel {
    /// The quantity and its unit, shown above and beside the panel.
    pub y_label: String,
    /// (name, (x, y) points) per line.
    pub series: Vec<(String, Vec<(f64, f64)>)>,
}

/// Draws `panels` side by side (each with its own y axis, since their units differ)
/// against the swept setting `x_label` into a PNG at `path`.
///
/// # Errors
/// [`BenchError::Plot`] if no font is available or drawing fails.
pub fn panels(path: &Path, title: &str, x_label: &str, panels: &[Panel]) -> Result<(), BenchError> {
    let panels: Vec<SeriesPanel> = panels
        .iter()
        .map(|p| SeriesPanel {
            y_label: p.y_label.clone(),
            series: vec![(String::new(), p.points.clone())],
        })
        .collect();
    series_panels(path, title, x_label, &panels)
}

/// As [`panels`], with several lines per panel; a line with an empty name gets no legend.
///
/// # Errors
/// [`BenchError::Plot`] if no font is available or drawing fails.
pub fn series_panels(
    path: &Path,
    title: &str,
    x_label: &str,
    panels: &[SeriesPanel],
) -> Result<(), BenchError> {
    let err = |detail: String| BenchError::Plot {
        path: path.to_path_buf(),
        detail,
    };
    font().map_err(err)?;
    let width = 360 * panels.len().max(1) as u32;
    let root = BitMapBackend::new(path, (width, 400)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(e.to_string()))?;
    let root = root
        .titled(title, ("sans-serif", 20))
        .map_err(|e| err(e.to_string()))?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    let colors = [BLUE, RED, GREEN, MAGENTA];
    for (i, (panel, area)) in panels.iter().zip(areas.iter()).enumerate() {
        let all = || panel.series.iter().flat_map(|(_, p)| p.iter());
        let x_max = all().map(|p| p.0).fold(0.0, f64::max);
        let y_max = all()
            .map(|p| p.1)
            .filter(|y| y.is_finite())
            .fold(0.0, f64::max);
        let x_points = panel.series.iter().map(|(_, p)| p.len()).max().unwrap_or(0);
        let mut chart = ChartBuilder::on(area)
            .caption(&panel.y_label, ("sans-serif", 15))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(-0.3f64..(x_max + 0.3), 0f64..(y_max * 1.2).max(1e-9))
            .map_err(|e| err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .x_labels(x_points.max(2) * 2)
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()
            .map_err(|e| err(e.to_string()))?;
        let mut named = false;
        for (j, (name, points)) in panel.series.iter().enumerate() {
            // Named lines keep their colour across panels; a lone line takes the panel's.
            let color = if name.is_empty() {
                colors[i % colors.len()]
            } else {
                colors[j % colors.len()]
            };
            let line = chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))
                .map_err(|e| err(e.to_string()))?;
            if !name.is_empty() {
                named = true;
                line.label(name.as_str()).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            }
            chart
                .draw_series(points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| err(e.to_string()))?;
        }
        if named {
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .label_font(("sans-serif", 12))
                .draw()
                .map_err(|e| err(e.to_string()))?;
        }
    }
    root.present().map_err(|e| err(e.to_string()))?;
    Ok(())
}
