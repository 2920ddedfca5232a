//! The charts, as SVG with `plotters` (its SVG backend writes text as SVG
//! text, so no system fonts are needed):
//!
//! - `latency_cdf.svg`: 4k random read and write latency, one line per
//!   target, x = latency (µs, log scale), y = percentile on a "nines"
//!   scale (0, 90, 99, 99.9, … each one step: −log10(1 − p)), from fio's
//!   full latency histograms merged over the repetitions. The tail is
//!   where the targets differ, and this scale gives it room.
//! - `throughput_by_block_size.svg`: sequential write and read MiB/s by
//!   block size, one line per target (median), bars from min to max.
//! - `message_size_sweep.svg`: slabfuse-memfs's throughput and CPU per GiB
//!   as `--max-message` grows; the per-core L2 size is marked.
//!
//! A chart that cannot be drawn is logged and left out; the numbers are in
//! `results.json` regardless.

use std::path::Path;

use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use crate::cli::{fio_size, human};
use crate::report::{cdf, merged_bins, summary, sweep_stat};
use crate::run::{Run, SLABFUSE};
use crate::stats::Summary;

type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
/// A chart-drawing function: `Ok(false)` when there is nothing to draw.
type Chart = fn(&Run, &Path) -> Result<bool, String>;
/// One CDF line: label, color, (µs, fraction) points, I/Os.
type CdfSeries = (String, RGBColor, Vec<(f64, f64)>, u64);

/// Draws every chart it can; returns the files written.
pub(crate) fn draw(run: &Run) -> Vec<String> {
    let mut out = Vec::new();
    let charts: [(&str, Chart); 3] = [
        ("latency_cdf.svg", latency_cdf),
        ("throughput_by_block_size.svg", throughput),
        ("message_size_sweep.svg", sweep),
    ];
    for (name, f) in charts {
        let path = run.out.join(name);
        match f(run, &path) {
            Ok(true) => out.push(path.display().to_string()),
            Ok(false) => {}
            Err(e) => crate::log(format_args!("chart {name}: {e}")),
        }
    }
    out
}

/// A target's color: slabfuse red, tmpfs grey, the peers blue and green.
fn color(label: &str, i: usize) -> RGBColor {
    match label {
        SLABFUSE => RGBColor(214, 39, 40),
        "tmpfs" => RGBColor(127, 127, 127),
        "fuser-memfs" => RGBColor(31, 119, 180),
        "libfuse-memfs" => RGBColor(44, 160, 44),
        _ => [
            RGBColor(148, 103, 189),
            RGBColor(255, 127, 14),
            RGBColor(140, 86, 75),
        ][i % 3],
    }
}

fn err<E: std::fmt::Debug>(e: E) -> String {
    format!("{e:?}")
}

/// −log10(1 − p), capped.
fn nines(p: f64, cap: f64) -> f64 {
    if p >= 1.0 {
        cap
    } else {
        (-(1.0 - p).log10()).min(cap)
    }
}

fn nines_label(y: f64) -> String {
    if y.fract().abs() > 1e-9 {
        return String::new();
    }
    match y as i64 {
        0 => "p0".into(),
        1 => "p90".into(),
        n => format!(
            "p99{}",
            if n > 2 {
                format!(".{}", "9".repeat(n as usize - 2))
            } else {
                String::new()
            }
        ),
    }
}

fn us_label(x: f64) -> String {
    if x >= 1000.0 {
        format!("{} ms", x / 1000.0)
    } else {
        format!("{x} µs")
    }
}

fn latency_cdf(run: &Run, path: &Path) -> Result<bool, String> {
    let mut panels = Vec::new();
    for (job, title) in [
        (
            "randread",
            "4k random read latency (fio, iodepth 1, O_DIRECT)",
        ),
        (
            "randwrite",
            "4k random write latency (fio, iodepth 1, O_DIRECT)",
        ),
    ] {
        let series: Vec<CdfSeries> = run
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let bins = merged_bins(t, job);
                let n = bins.iter().map(|b| b.1).sum();
                (
                    t.target.label.clone(),
                    color(&t.target.label, i),
                    cdf(&bins),
                    n,
                )
            })
            .filter(|s| !s.2.is_empty())
            .collect();
        if !series.is_empty() {
            panels.push((title, series));
        }
    }
    if panels.is_empty() {
        return Ok(false);
    }
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, panels.len()));
    for ((title, series), area) in panels.iter().zip(areas.iter()) {
        cdf_panel(area, title, series)?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

fn cdf_panel(area: &Area<'_>, title: &str, series: &[CdfSeries]) -> Result<(), String> {
    let lo = series
        .iter()
        .filter_map(|s| s.2.first().map(|p| p.0))
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .filter_map(|s| s.2.last().map(|p| p.0))
        .fold(0.0, f64::max);
    let x0 = 10f64.powf(lo.max(0.01).log10().floor());
    let x1 = 10f64.powf(hi.max(x0 * 10.0).log10().ceil());
    // As many nines as the largest sample count resolves (at most 6).
    let samples = series.iter().map(|s| s.3).max().unwrap_or(1);
    let cap = ((samples as f64).log10().floor()).clamp(2.0, 6.0);
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(70)
        .build_cartesian_2d((x0..x1).log_scale(), 0f64..cap)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc("latency (log scale)")
        .y_desc("percentile (each step one more 9)")
        .y_labels(cap as usize + 1)
        .y_label_formatter(&|y| nines_label(*y))
        .x_label_formatter(&|x| us_label(*x))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    for (label, c, points, n) in series {
        let c = *c;
        // A step line: each histogram bin raises the CDF at its latency.
        let mut pts = Vec::with_capacity(points.len() * 2);
        let mut prev = 0.0;
        for &(us, f) in points {
            pts.push((us, nines(prev, cap)));
            pts.push((us, nines(f, cap)));
            prev = f;
        }
        chart
            .draw_series(LineSeries::new(pts, c.stroke_width(2)))
            .map_err(err)?
            .label(format!(
                "{label} ({} I/Os)",
                crate::report::fmt_num(*n as f64, 0)
            ))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    Ok(())
}

/// One line of a categorical chart: label, color, (median, min, max) per
/// category (`None`: missing).
type Line = (String, RGBColor, Vec<Option<(f64, f64, f64)>>);

fn throughput(run: &Run, path: &Path) -> Result<bool, String> {
    let o = &run.options;
    let cats: Vec<String> = o.bss.iter().map(|&b| fio_size(b)).collect();
    let mut panels = Vec::new();
    for (dir, title) in [
        ("seq_write", "sequential write (fio, O_DIRECT, 1 job)"),
        ("seq_read", "sequential read (fio, O_DIRECT, 1 job)"),
    ] {
        let lines: Vec<Line> = run
            .targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = cats
                    .iter()
                    .map(|b| summary(t, &format!("{dir}/{b}")).map(|s| (s.median, s.min, s.max)))
                    .collect();
                (t.target.label.clone(), color(&t.target.label, i), v)
            })
            .collect();
        panels.push((title, lines));
    }
    if panels
        .iter()
        .all(|(_, l)| l.iter().all(|x| x.2.iter().all(Option::is_none)))
    {
        return Ok(false);
    }
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, 2));
    for ((title, lines), area) in panels.iter().zip(areas.iter()) {
        category_panel(
            area,
            title,
            "block size",
            "MiB/s (median; bar: min–max)",
            &cats,
            lines,
            None,
        )?;
    }
    root.present().map_err(err)?;
    Ok(true)
}

/// A chart with categories on x and lines with min–max bars.
fn category_panel(
    area: &Area<'_>,
    title: &str,
    x_desc: &str,
    y_desc: &str,
    cats: &[String],
    lines: &[Line],
    marker: Option<(usize, String)>,
) -> Result<(), String> {
    let ymax = lines
        .iter()
        .flat_map(|l| l.2.iter().flatten().map(|v| v.2))
        .fold(0.0, f64::max)
        .max(1.0)
        * 1.15;
    let n = cats.len() as i32;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(14)
        .margin_right(40)
        .x_label_area_size(45)
        .y_label_area_size(75)
        // Integer ranges are inclusive in plotters: 0..n-1 is n categories.
        .build_cartesian_2d((0..n - 1).into_segmented(), 0f64..ymax)
        .map_err(err)?;
    chart
        .configure_mesh()
        .x_desc(x_desc)
        .y_desc(y_desc)
        .x_labels(cats.len())
        .x_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                cats.get(*i as usize).cloned().unwrap_or_default()
            }
            SegmentValue::Last => String::new(),
        })
        .y_label_formatter(&|y| crate::report::fmt_num(*y, 0))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(err)?;
    if let Some((i, label)) = marker {
        let x = SegmentValue::CenterOf(i as i32);
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x.clone(), 0.0), (x.clone(), ymax)],
                BLACK.mix(0.35).stroke_width(1),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(Text::new(
                label,
                (x, ymax * 0.04),
                ("sans-serif", 14).into_font().color(&BLACK.mix(0.6)),
            )))
            .map_err(err)?;
    }
    for (label, c, values) in lines {
        let c = *c;
        let pts: Vec<(SegmentValue<i32>, f64)> = values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (SegmentValue::CenterOf(i as i32), v.0)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        chart
            .draw_series(LineSeries::new(pts.clone(), c.stroke_width(2)))
            .map_err(err)?
            .label(label.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], c.stroke_width(3)));
        chart
            .draw_series(pts.iter().map(|p| Circle::new(p.clone(), 4, c.filled())))
            .map_err(err)?;
        chart
            .draw_series(values.iter().enumerate().filter_map(|(i, v)| {
                v.map(|(m, lo, hi)| {
                    ErrorBar::new_vertical(
                        SegmentValue::CenterOf(i as i32),
                        lo,
                        m,
                        hi,
                        c.stroke_width(1),
                        10,
                    )
                })
            }))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.5))
        .label_font(("sans-serif", 15))
        .draw()
        .map_err(err)?;
    Ok(())
}

fn sweep(run: &Run, path: &Path) -> Result<bool, String> {
    if run.sweep.is_empty() {
        return Ok(false);
    }
    let cats: Vec<String> = run.sweep.iter().map(|p| human(p.max_message)).collect();
    let triple = |s: Option<Summary>| s.map(|s| (s.median, s.min, s.max));
    let mut tput_w = Vec::new();
    let mut tput_r = Vec::new();
    let mut cpu: [Vec<Option<(f64, f64, f64)>>; 4] = Default::default();
    for p in &run.sweep {
        let (w, r) = sweep_stat(p, |j| Some(j.mib_s));
        tput_w.push(triple(w));
        tput_r.push(triple(r));
        let (dw, dr) = sweep_stat(p, |j| j.ms_per_gib(j.daemon_cpu_s));
        let (fw, fr) = sweep_stat(p, |j| j.ms_per_gib(Some(j.fio_cpu_s)));
        for (slot, v) in cpu.iter_mut().zip([dw, dr, fw, fr]) {
            slot.push(triple(v));
        }
    }
    let [dw, dr, fw, fr] = cpu;
    let red = RGBColor(214, 39, 40);
    let orange = RGBColor(255, 127, 14);
    let blue = RGBColor(31, 119, 180);
    let teal = RGBColor(23, 190, 207);
    let tput: Vec<Line> = vec![("write".into(), red, tput_w), ("read".into(), blue, tput_r)];
    let cpu: Vec<Line> = vec![
        ("daemon CPU, write".into(), red, dw),
        ("daemon CPU, read".into(), blue, dr),
        ("fio (client) CPU, write".into(), orange, fw),
        ("fio (client) CPU, read".into(), teal, fr),
    ];
    // The per-core L2 cache, if one of the message sizes equals it.
    let l2 = crate::procfs::caches()
        .into_iter()
        .find(|c| c.0 == 2 && c.1 != "Instruction")
        .map(|c| c.2);
    let marker = l2.and_then(|b| {
        run.sweep
            .iter()
            .position(|p| p.max_message == b)
            .map(|i| (i, format!(" ← L2 cache per core = {}", human(b))))
    });
    let root = SVGBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let areas = root.split_evenly((1, 2));
    let o = &run.options;
    let what = format!(
        "{SLABFUSE}: {} at {} blocks",
        fio_size(o.sweep_size),
        fio_size(o.sweep_bs)
    );
    category_panel(
        &areas[0],
        &format!("throughput by --max-message ({what})"),
        "--max-message",
        "MiB/s (median; bar: min–max)",
        &cats,
        &tput,
        marker.clone(),
    )?;
    category_panel(
        &areas[1],
        "CPU per GiB moved by --max-message",
        "--max-message",
        "CPU ms per GiB (median)",
        &cats,
        &cpu,
        marker,
    )?;
    root.present().map_err(err)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_scale() {
        assert_eq!(nines(0.0, 5.0), 0.0);
        assert!((nines(0.99, 5.0) - 2.0).abs() < 1e-9);
        assert_eq!(nines(1.0, 5.0), 5.0);
        assert_eq!(nines_label(0.0), "p0");
        assert_eq!(nines_label(1.0), "p90");
        assert_eq!(nines_label(2.0), "p99");
        assert_eq!(nines_label(4.0), "p99.99");
        assert_eq!(nines_label(0.5), "");
    }
}
