//! The report's plots, each as SVG and PNG: query latency by kind per backend, ingest
//! and write throughput by writer count, and the recall/latency curve.

use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::Report;

/// Where Debian's `fonts-dejavu-core` puts the face the plots use. Text in a plot needs
/// a font's metrics even in SVG, and no system font lookup is linked (fontconfig is
/// not on every machine), so the plots are skipped with a note when it is absent.
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";

const SQLITE: RGBColor = RGBColor(0x1f, 0x77, 0xb4);
const POSTGRES: RGBColor = RGBColor(0xd6, 0x27, 0x28);

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Writes the plots into `out`; returns notes on what it could not draw.
pub(super) fn write(report: &Report, out: &Path) -> Vec<String> {
    let bytes = match std::fs::read(FONT) {
        Ok(b) => b,
        Err(e) => return vec![format!("plots skipped: cannot read the font {FONT}: {e}")],
    };
    // The font registry holds `'static` data; the report is drawn once per process.
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    if plotters::style::register_font("sans-serif", FontStyle::Normal, bytes).is_err() {
        return vec![format!("plots skipped: {FONT} is not a usable font")];
    }
    let mut notes = Vec::new();
    // Each plot is drawn twice, once per backend type: a macro, as the drawing
    // functions are generic over the backend.
    macro_rules! draw {
        ($name:literal, $size:expr, $f:ident) => {
            let svg = out.join(concat!($name, ".svg"));
            if let Err(e) = $f(report, SVGBackend::new(&svg, $size).into_drawing_area()) {
                notes.push(format!("{} not drawn: {e}", svg.display()));
            }
            let png = out.join(concat!($name, ".png"));
            if let Err(e) = $f(report, BitMapBackend::new(&png, $size).into_drawing_area()) {
                notes.push(format!("{} not drawn: {e}", png.display()));
            }
        };
    }
    draw!("latency", (1100, 560), latency);
    draw!("throughput", (1100, 480), throughput);
    draw!("recall", (800, 520), recall);
    notes
}

/// p50 of every query case at the largest size, one client, SQLite and Postgres bars
/// side by side on a log scale.
fn latency<DB: DrawingBackend>(r: &Report, area: DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let size = r.summary.size;
    let cases: Vec<(String, f64, f64)> = r
        .queries
        .iter()
        .filter(|q| q.size == size && q.clients == 1 && q.backend == "sqlite")
        .filter_map(|a| {
            let b = r.queries.iter().find(|b| {
                b.size == size
                    && b.clients == 1
                    && b.backend == "postgres"
                    && b.kind == a.kind
                    && b.case == a.case
            })?;
            Some((
                format!("{} {}", a.kind, a.case),
                a.latency.p50_ms,
                b.latency.p50_ms,
            ))
        })
        .collect();
    let top = cases.iter().flat_map(|c| [c.1, c.2]).fold(1.0f64, f64::max) * 2.0;
    let n = cases.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&area)
        .caption(
            format!("Query p50 at {size} entries, 1 client (log scale)"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(170)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..n, (0.01f64..top).log_scale())?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("ms")
        .draw()?;
    for (i, (_, a, b)) in cases.iter().enumerate() {
        let x = i as f64;
        chart.draw_series([
            Rectangle::new([(x + 0.1, 0.01), (x + 0.48, *a)], SQLITE.filled()),
            Rectangle::new([(x + 0.52, 0.01), (x + 0.9, *b)], POSTGRES.filled()),
        ])?;
    }
    // Case names under the axis, turned to read upwards.
    let style = ("sans-serif", 13)
        .into_font()
        .transform(FontTransform::Rotate90)
        .color(&BLACK);
    for (i, (name, _, _)) in cases.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.35, 0.01));
        area.draw(&Text::new(name.clone(), (px, py + 8), style.clone()))?;
    }
    legend(&area, 80)?;
    area.present()?;
    Ok(())
}

fn legend<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, x: i32) -> DrawResult
where
    DB::ErrorType: 'static,
{
    for (i, (name, color)) in [("SQLite", SQLITE), ("Postgres", POSTGRES)]
        .iter()
        .enumerate()
    {
        let y = 44 + i as i32 * 20;
        area.draw(&Rectangle::new([(x, y), (x + 14, y + 12)], color.filled()))?;
        area.draw(&Text::new(
            *name,
            (x + 20, y - 1),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    Ok(())
}

/// Left: ingest entries/s per size and backend. Right: entries/s by concurrent writers,
/// single entries (solid) and batches of 100 (dashed points).
fn throughput<DB: DrawingBackend>(r: &Report, area: DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let (left, right) = area.split_horizontally(420);
    let ingest: Vec<(usize, f64, f64)> = r
        .sizes
        .iter()
        .filter_map(|&size| {
            let get = |b: &str| {
                r.ingest
                    .iter()
                    .find(|i| i.size == size && i.backend == b && i.mode == "text+vectors")
                    .map(|i| i.entries_per_s)
            };
            Some((size, get("sqlite")?, get("postgres")?))
        })
        .collect();
    let top = ingest.iter().flat_map(|i| [i.1, i.2]).fold(1.0, f64::max) * 1.15;
    let n = ingest.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&left)
        .caption("Ingest, text + vectors", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0f64..n, 0f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(0)
        .y_desc("entries/s")
        .draw()?;
    for (i, (size, a, b)) in ingest.iter().enumerate() {
        let x = i as f64;
        chart.draw_series([
            Rectangle::new([(x + 0.1, 0.0), (x + 0.48, *a)], SQLITE.filled()),
            Rectangle::new([(x + 0.52, 0.0), (x + 0.9, *b)], POSTGRES.filled()),
        ])?;
        let (px, py) = chart.backend_coord(&(x + 0.4, 0.0));
        left.draw(&Text::new(
            format!("{size}"),
            (px, py + 8),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    legend(&left, 90)?;

    let max_w = r
        .writers
        .iter()
        .map(|w| w.writers)
        .max()
        .unwrap_or(1)
        .max(2) as f64;
    let top = r
        .writers
        .iter()
        .map(|w| w.entries_per_s)
        .fold(1.0, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&right)
        .caption(
            "Concurrent writers (8 readers, 200 searches/s)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d((1f64..max_w * 1.2).log_scale(), 0f64..top)?;
    chart
        .configure_mesh()
        .x_labels(8)
        .x_label_formatter(&|x| format!("{x:.0}"))
        .x_desc("writers")
        .y_desc("entries/s")
        .draw()?;
    for (backend, color) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
        for batch in [1, 100] {
            let pts: Vec<(f64, f64)> = r
                .writers
                .iter()
                .filter(|w| w.backend == backend && w.batch == batch)
                .map(|w| (w.writers as f64, w.entries_per_s))
                .collect();
            let label = format!(
                "{} {}",
                if backend == "sqlite" {
                    "SQLite"
                } else {
                    "Postgres"
                },
                if batch == 1 {
                    "single"
                } else {
                    "batches of 100"
                }
            );
            let style = if batch == 1 {
                color.stroke_width(3)
            } else {
                color.mix(0.5).stroke_width(2)
            };
            chart
                .draw_series(LineSeries::new(pts.clone(), style))?
                .label(label)
                .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], style));
            chart.draw_series(pts.iter().map(|p| Circle::new(*p, 4, style.filled())))?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    area.present()?;
    Ok(())
}

/// Recall@10 against p50 latency, one curve per corpus, points labelled by ef_search;
/// SQLite's exact search is the point at recall 1.
fn recall<DB: DrawingBackend>(r: &Report, area: DrawingArea<DB, Shift>) -> DrawResult
where
    DB::ErrorType: 'static,
{
    area.fill(&WHITE)?;
    let right = r.recall.iter().map(|x| x.p50_ms).fold(1.0, f64::max) * 1.3;
    let low = r.recall.iter().map(|x| x.recall10).fold(1.0, f64::min);
    let bottom = (low - 0.05).clamp(0.0, 0.9);
    let mut chart = ChartBuilder::on(&area)
        .caption("HNSW recall@10 against latency", ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d((0.05f64..right).log_scale(), bottom..1.01f64)?;
    chart
        .configure_mesh()
        .x_desc("p50 ms (log scale)")
        .y_desc("recall@10")
        .draw()?;
    let palette = [
        POSTGRES,
        RGBColor(0xff, 0x7f, 0x0e),
        RGBColor(0x2c, 0xa0, 0x2c),
    ];
    let mut collections: Vec<&str> = r.recall.iter().map(|x| x.collection.as_str()).collect();
    collections.dedup();
    for (i, c) in collections.iter().enumerate() {
        let color = palette[i % palette.len()];
        let pts: Vec<(f64, f64, String)> = r
            .recall
            .iter()
            .filter(|x| x.collection == *c && x.backend == "postgres")
            .map(|x| {
                (
                    x.p50_ms,
                    x.recall10,
                    format!("ef {}", x.ef_search.unwrap_or(0)),
                )
            })
            .collect();
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|p| (p.0, p.1)),
                color.stroke_width(2),
            ))?
            .label(format!("Postgres HNSW, {c}"))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 18, y)], color.stroke_width(2)));
        for (x, y, label) in &pts {
            chart.draw_series([Circle::new((*x, *y), 4, color.filled())])?;
            chart.draw_series([Text::new(
                label.clone(),
                (*x, *y),
                ("sans-serif", 12).into_font(),
            )])?;
        }
        if let Some(e) = r
            .recall
            .iter()
            .find(|x| x.collection == *c && x.backend == "sqlite")
        {
            chart
                .draw_series([TriangleMarker::new((e.p50_ms, 1.0), 7, SQLITE.filled())])?
                .label(format!("SQLite exact, {c}"))
                .legend(|(x, y)| TriangleMarker::new((x + 9, y), 6, SQLITE.filled()));
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()?;
    area.present()?;
    Ok(())
}
