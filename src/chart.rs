//! Self-contained SVG charts for `compare`: a scatter of bits per weight against mean KLD
//! (log y axis) and per-layer error lines, under a title saying what was measured. Ticks sit
//! on round values (1, 2 or 5 times a power of ten), and point labels are moved apart until
//! no two overlap. No dependencies, renders in any browser.

use std::fmt::Write;

/// One labelled point.
#[derive(Debug, Clone)]
pub struct Point {
    pub label: String,
    pub x: f64,
    pub y: f64,
}

/// One named line of (x, y) values.
#[derive(Debug, Clone)]
pub struct Series {
    pub name: String,
    pub points: Vec<(f64, f64)>,
}

const PALETTE: [&str; 8] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf",
];
const W: f64 = 640.0;
const H: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 150.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
/// Height of one title line above the panels.
const TITLE_LINE: f64 = 20.0;
/// Font size of point labels, and the width of one of their characters (a sans-serif estimate).
const LABEL_FONT: f64 = 12.0;
const CHAR_W: f64 = 0.6 * LABEL_FONT;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Maps data to pixels inside one panel.
struct Frame {
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    log_y: bool,
    integer_x: bool,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        let t = if self.x1 > self.x0 {
            (x - self.x0) / (self.x1 - self.x0)
        } else {
            0.5
        };
        LEFT + t * (W - LEFT - RIGHT)
    }
    fn py(&self, y: f64) -> f64 {
        let (a, b, v) = if self.log_y {
            (self.y0.log10(), self.y1.log10(), y.max(self.y0).log10())
        } else {
            (self.y0, self.y1, y)
        };
        let t = if b > a { (v - a) / (b - a) } else { 0.5 };
        H - BOTTOM - t * (H - TOP - BOTTOM)
    }
}

fn padded(lo: f64, hi: f64) -> (f64, f64) {
    if hi > lo {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    } else {
        (lo - 1.0, hi + 1.0)
    }
}

fn axes(svg: &mut String, f: &Frame, title: &str, x_label: &str, y_label: &str) {
    let (l, r, t, b) = (LEFT, W - RIGHT, TOP, H - BOTTOM);
    let _ = write!(
        svg,
        r##"<rect x="{l}" y="{t}" width="{}" height="{}" fill="#fff" stroke="#444"/>"##,
        r - l,
        b - t
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">{}</text>"#,
        f64::midpoint(l, r),
        esc(title)
    );
    let _ = write!(
        svg,
        r#"<text x="{}" y="{}" font-size="12" text-anchor="middle">{}</text>"#,
        f64::midpoint(l, r),
        H - 12.0,
        esc(x_label)
    );
    let _ = write!(
        svg,
        r#"<text x="18" y="{}" font-size="12" text-anchor="middle" transform="rotate(-90 18 {})">{}</text>"#,
        f64::midpoint(t, b),
        f64::midpoint(t, b),
        esc(y_label)
    );
    // Round ticks: 1, 2 or 5 times a power of ten (whole numbers when the axis counts layers).
    let x_ticks = nice_ticks(f.x0, f.x1, 8, f.integer_x);
    for (x, label) in x_ticks {
        let px = f.px(x);
        let _ = write!(
            svg,
            r##"<line x1="{px:.1}" y1="{b}" x2="{px:.1}" y2="{}" stroke="#444"/>"##,
            b + 5.0
        );
        let _ = write!(
            svg,
            r#"<text x="{px:.1}" y="{}" font-size="11" text-anchor="middle">{label}</text>"#,
            b + 18.0
        );
    }
    let ticks: Vec<(f64, String)> = if f.log_y {
        log_ticks(f.y0, f.y1)
    } else {
        nice_ticks(f.y0, f.y1, 6, false)
    };
    for (v, label) in ticks {
        let py = f.py(v);
        let _ = write!(
            svg,
            r##"<line x1="{l}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#ddd"/>"##
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{label}</text>"#,
            l - 6.0,
            py + 4.0
        );
    }
}

/// At most `max` ticks in `lo..=hi` at multiples of a round step (1, 2 or 5 × 10^k; at least 1
/// when `integer`), each with its label written with just the decimals the step needs.
pub fn nice_ticks(lo: f64, hi: f64, max: usize, integer: bool) -> Vec<(f64, String)> {
    if !(lo.is_finite() && hi.is_finite() && hi > lo) || max < 2 {
        return Vec::new();
    }
    let raw = (hi - lo) / (max - 1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|&s| s >= raw)
        .unwrap_or(10.0 * mag);
    if integer {
        step = step.max(1.0).round();
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    let first = (lo / step).ceil() as i64;
    let last = (hi / step).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            // -0.0 and 0.30000000000000004 both print as they should.
            let v = if v.abs() < step * 1e-9 { 0.0 } else { v };
            (v, format!("{v:.decimals$}"))
        })
        .collect()
}

/// Ticks of a log axis over `lo..=hi` (both > 0): every power of ten, and 2× and 5× between
/// them when the axis spans fewer than three decades.
pub fn log_ticks(lo: f64, hi: f64) -> Vec<(f64, String)> {
    if !(lo > 0.0 && hi > lo && hi.is_finite()) {
        return Vec::new();
    }
    let (a, z) = (lo.log10().floor() as i32, hi.log10().ceil() as i32);
    let mults: &[f64] = if z - a < 3 { &[1.0, 2.0, 5.0] } else { &[1.0] };
    let mut out = Vec::new();
    for e in a..=z {
        for &m in mults {
            let v = m * 10f64.powi(e);
            if v >= lo * 0.999 && v <= hi * 1.001 {
                let label = if (-3..=3).contains(&e) {
                    let decimals = (-e).max(0) as usize;
                    format!("{v:.decimals$}")
                } else {
                    format!("{m:.0}e{e}")
                };
                out.push((v, label));
            }
        }
    }
    out
}

/// A text label's box: x from, x to, baseline y (one line of [`LABEL_FONT`]).
#[derive(Clone, Copy, Debug)]
struct LabelBox {
    x0: f64,
    x1: f64,
    y: f64,
}

impl LabelBox {
    fn overlaps(&self, o: &LabelBox) -> bool {
        self.x0 < o.x1 && o.x0 < self.x1 && (self.y - o.y).abs() < LABEL_FONT + 2.0
    }
}

/// Places one label per point (`(x, y)` pixels, text): to the right of its point, or to the left
/// near the right edge, moved down and up in steps until it overlaps no label placed before and
/// no point. Returns (x, y, anchor) per label.
fn place_labels(points: &[(f64, f64, &str)]) -> Vec<(f64, f64, &'static str)> {
    let mut placed: Vec<LabelBox> = Vec::new();
    let mut out = Vec::with_capacity(points.len());
    let dots: Vec<LabelBox> = points
        .iter()
        .map(|&(x, y, _)| LabelBox {
            x0: x - 6.0,
            x1: x + 6.0,
            y: y + 4.0,
        })
        .collect();
    for &(cx, cy, text) in points {
        let w = CHAR_W * text.chars().count() as f64;
        let right = cx + 9.0 + w <= W - 4.0;
        let (x0, anchor) = if right {
            (cx + 9.0, "start")
        } else {
            (cx - 9.0 - w, "end")
        };
        let at = |dy: f64| LabelBox {
            x0,
            x1: x0 + w,
            y: cy + 4.0 + dy,
        };
        let step = LABEL_FONT + 3.0;
        let dy = (0..40)
            .map(|i| {
                let k = f64::from((i + 1) / 2);
                if i % 2 == 0 { k * step } else { -k * step }
            })
            .map(|d| d - 12.0)
            .find(|&d| {
                let b = at(d);
                !placed.iter().chain(&dots).any(|o| b.overlaps(o))
            })
            .unwrap_or(-12.0);
        let b = at(dy);
        placed.push(b);
        let x = if right { b.x0 } else { b.x1 };
        out.push((x, b.y, anchor));
    }
    out
}

/// A scatter plot with a log y axis; each point labelled; `fronts` drawn as dashed lines through
/// their points (e.g. Pareto fronts), with a legend.
pub fn scatter_log_y(
    title: &str,
    x_label: &str,
    y_label: &str,
    points: &[Point],
    fronts: &[Series],
) -> String {
    let xs = points.iter().map(|p| p.x);
    let (x0, x1) = padded(
        xs.clone().fold(f64::INFINITY, f64::min),
        xs.fold(f64::NEG_INFINITY, f64::max),
    );
    let pos: Vec<f64> = points.iter().map(|p| p.y).filter(|y| *y > 0.0).collect();
    let lo = pos.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = pos.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (y0, y1) = if pos.is_empty() {
        (1e-6, 1.0)
    } else {
        (
            10f64.powf(lo.log10().floor()),
            10f64.powf((hi.log10() + 1e-9).ceil()),
        )
    };
    let f = Frame {
        x0,
        x1,
        y0,
        y1: if y1 > y0 { y1 } else { y0 * 10.0 },
        log_y: true,
        integer_x: false,
    };
    let mut svg = String::new();
    axes(&mut svg, &f, title, x_label, y_label);
    let pixels: Vec<(f64, f64, &str)> = points
        .iter()
        .map(|p| (f.px(p.x), f.py(p.y.max(f.y0)), p.label.as_str()))
        .collect();
    for (i, fr) in fronts.iter().enumerate() {
        let color = ["#555555", "#bbbbbb"][i % 2];
        let pts: Vec<String> = fr
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y.max(f.y0))))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2" stroke-dasharray="6 4"/>"#,
            pts.join(" ")
        );
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let lx = W - RIGHT + 12.0;
        let _ = write!(
            svg,
            r#"<line x1="{lx}" y1="{}" x2="{}" y2="{}" stroke="{color}" stroke-width="2" stroke-dasharray="6 4"/><text x="{}" y="{ly}" font-size="12">{}</text>"#,
            ly - 4.0,
            lx + 14.0,
            ly - 4.0,
            lx + 18.0,
            esc(&fr.name)
        );
    }
    let labels = place_labels(&pixels);
    for (i, (p, &(cx, cy, _))) in points.iter().zip(&pixels).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="6" fill="{color}"><title>{}: x={:.3} y={:.3e}</title></circle>"#,
            esc(&p.label),
            p.x,
            p.y
        );
    }
    for (i, (p, &(x, y, anchor))) in points.iter().zip(&labels).enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{LABEL_FONT}" fill="{color}" text-anchor="{anchor}">{}</text>"#,
            esc(&p.label)
        );
    }
    svg
}

/// A line chart (linear axes) with a legend.
pub fn lines(title: &str, x_label: &str, y_label: &str, series: &[Series]) -> String {
    let all: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|s| s.points.iter().copied())
        .collect();
    let lo = all.iter().map(|p| p.0).fold(f64::INFINITY, f64::min);
    let hi = all.iter().map(|p| p.0).fold(f64::NEG_INFINITY, f64::max);
    let integer_x = all.iter().all(|p| p.0.fract() == 0.0);
    let (x0, x1) = if integer_x && lo.is_finite() {
        (lo - 0.5, hi + 0.5)
    } else {
        padded(lo, hi)
    };
    let y1 = all.iter().map(|p| p.1).fold(0.0, f64::max) * 1.1;
    let f = Frame {
        x0,
        x1,
        y0: 0.0,
        y1: if y1 > 0.0 { y1 } else { 1.0 },
        log_y: false,
        integer_x,
    };
    let mut svg = String::new();
    axes(&mut svg, &f, title, x_label, y_label);
    for (i, s) in series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", f.px(x), f.py(y)))
            .collect();
        let _ = write!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            pts.join(" ")
        );
        for &(x, y) in &s.points {
            let _ = write!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"/>"#,
                f.px(x),
                f.py(y)
            );
        }
        let ly = TOP + 14.0 + 18.0 * i as f64;
        let lx = W - RIGHT + 12.0;
        let _ = write!(
            svg,
            r#"<rect x="{lx}" y="{}" width="12" height="12" fill="{color}"/>"#,
            ly - 10.0
        );
        let _ = write!(
            svg,
            r#"<text x="{}" y="{ly}" font-size="12">{}</text>"#,
            lx + 16.0,
            esc(&s.name)
        );
    }
    svg
}

/// Stacks panels vertically into one SVG document under the `title` lines (the first bold).
pub fn document(title: &[String], panels: &[String]) -> String {
    let head = TITLE_LINE * title.len() as f64 + if title.is_empty() { 0.0 } else { 8.0 };
    let height = head + H * panels.len() as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif">"#
    );
    for (i, line) in title.iter().enumerate() {
        let (size, weight) = if i == 0 { (15, "bold") } else { (12, "normal") };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" font-size="{size}" font-weight="{weight}" text-anchor="middle">{}</text>"#,
            W / 2.0,
            TITLE_LINE * (i as f64 + 1.0),
            esc(line)
        );
    }
    for (i, p) in panels.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<g transform="translate(0 {})">{p}</g>"#,
            head + H * i as f64
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scatter_has_labels_and_points() {
        let pts = vec![
            Point {
                label: "q8_0".into(),
                x: 8.5,
                y: 1e-4,
            },
            Point {
                label: "q4_0 <x>".into(),
                x: 4.5,
                y: 2e-2,
            },
        ];
        let svg = document(
            &[],
            &[scatter_log_y("t", "bits per weight", "mean KLD", &pts, &[])],
        );
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains(">q8_0<") && svg.contains("q4_0 &lt;x&gt;"));
        assert!(!svg.contains("NaN"), "{svg}");
    }

    #[test]
    fn degenerate_inputs_do_not_produce_nan() {
        let one = [Point {
            label: "a".into(),
            x: 4.0,
            y: 0.0,
        }];
        let svg = document(
            &["title".into()],
            &[
                scatter_log_y("t", "x", "y", &one, &[]),
                lines("l", "x", "y", &[]),
            ],
        );
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }

    /// The `text` elements of an SVG: (x, y, anchor, text).
    fn texts(svg: &str) -> Vec<(f64, f64, String, String)> {
        let attr = |tag: &str, name: &str| -> Option<String> {
            let i = tag.find(&format!(" {name}=\""))? + name.len() + 3;
            Some(tag[i..].split('"').next()?.to_owned())
        };
        svg.split("<text")
            .skip(1)
            .map(|t| {
                let (tag, rest) = t.split_once('>').unwrap();
                let body = rest.split("</text>").next().unwrap().to_owned();
                (
                    attr(tag, "x").unwrap().parse().unwrap(),
                    attr(tag, "y").unwrap().parse().unwrap(),
                    attr(tag, "text-anchor").unwrap_or_else(|| "start".into()),
                    body,
                )
            })
            .collect()
    }

    #[test]
    fn ticks_are_round() {
        for (lo, hi) in [
            (4.2, 8.7),
            (0.0, 0.0137),
            (3.93, 4.01),
            (-0.5, 29.5),
            (0.0, 1.1e-3),
        ] {
            let ticks = nice_ticks(lo, hi, 8, false);
            assert!(
                ticks.len() >= 2 && ticks.len() <= 8,
                "{lo}..{hi}: {ticks:?}"
            );
            let step = ticks[1].0 - ticks[0].0;
            let mantissa = step / 10f64.powf(step.log10().floor());
            assert!(
                [1.0, 2.0, 5.0].iter().any(|m| (mantissa - m).abs() < 1e-6),
                "{lo}..{hi}: step {step}"
            );
            for (v, label) in &ticks {
                assert!((v / step - (v / step).round()).abs() < 1e-6, "{v}");
                assert!(label.len() <= 7, "{label}");
                assert!(
                    (label.parse::<f64>().unwrap() - v).abs() < step * 1e-6,
                    "{label}"
                );
            }
        }
        let layers: Vec<String> = nice_ticks(-0.5, 29.5, 8, true)
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(layers, ["0", "5", "10", "15", "20", "25"]);
        let log: Vec<String> = log_ticks(1e-3, 1e-1).into_iter().map(|t| t.1).collect();
        assert_eq!(
            log,
            ["0.001", "0.002", "0.005", "0.01", "0.02", "0.05", "0.1"]
        );
    }

    #[test]
    fn point_labels_do_not_overlap() {
        // Five artifacts of nearly the same size and accuracy, one at the right edge.
        let pts: Vec<Point> = [
            ("model-q4_k_m", 4.85, 0.0086),
            ("llama.cpp-Q4_K_M", 4.86, 0.0087),
            ("model-q4_k_s", 4.84, 0.0090),
            ("model-q4_0", 4.63, 0.0142),
            ("model-q8_0-with-a-long-name", 8.5, 0.0002),
        ]
        .iter()
        .map(|&(l, x, y)| Point {
            label: l.into(),
            x,
            y,
        })
        .collect();
        let svg = document(&["t".into()], &[scatter_log_y("t", "x", "y", &pts, &[])]);
        let boxes: Vec<(f64, f64, f64)> = texts(&svg)
            .into_iter()
            .filter(|t| pts.iter().any(|p| p.label == t.3))
            .map(|(x, y, anchor, text)| {
                let w = CHAR_W * text.chars().count() as f64;
                let x0 = if anchor == "end" { x - w } else { x };
                (x0, x0 + w, y)
            })
            .collect();
        assert_eq!(boxes.len(), pts.len());
        for (i, a) in boxes.iter().enumerate() {
            assert!(a.0 >= 0.0 && a.1 <= W, "label {i} leaves the chart: {a:?}");
            for b in &boxes[i + 1..] {
                let apart = a.1 <= b.0 || b.1 <= a.0 || (a.2 - b.2).abs() >= LABEL_FONT;
                assert!(apart, "labels overlap: {a:?} {b:?}");
            }
        }
    }

    #[test]
    fn document_has_the_title() {
        let svg = document(
            &[
                "SmolLM2: 2 artifacts against f16.lpk".into(),
                "text wiki.txt · ctx 512".into(),
            ],
            &[lines("l", "layer", "e", &[])],
        );
        let t = texts(&svg);
        assert_eq!(t[0].3, "SmolLM2: 2 artifacts against f16.lpk");
        assert_eq!(t[1].3, "text wiki.txt · ctx 512");
        assert!(svg.contains(r#"<g transform="translate(0 48)">"#), "{svg}");
    }
}
