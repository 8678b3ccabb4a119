//! Self-contained SVG charts for `compare`: a scatter of bits per weight against mean KLD
//! (log y axis) and per-layer error lines. No dependencies, renders in any browser.

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
    // Whole-number ticks when the x axis counts things (layers), five even ticks otherwise.
    let x_ticks: Vec<(f64, String)> = if f.integer_x {
        let (lo, hi) = (f.x0.ceil() as i64, f.x1.floor() as i64);
        let step = ((hi - lo) / 10 + 1).max(1);
        (lo..=hi)
            .step_by(step as usize)
            .map(|v| (v as f64, v.to_string()))
            .collect()
    } else {
        (0..=5)
            .map(|i| {
                let x = f.x0 + (f.x1 - f.x0) * f64::from(i) / 5.0;
                (x, format!("{x:.2}"))
            })
            .collect()
    };
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
    let ticks: Vec<f64> = if f.log_y {
        let (a, z) = (f.y0.log10().floor() as i32, f.y1.log10().ceil() as i32);
        (a..=z)
            .map(|e| 10f64.powi(e))
            .filter(|&v| v >= f.y0 * 0.999 && v <= f.y1 * 1.001)
            .collect()
    } else {
        (0..=5)
            .map(|i| f.y0 + (f.y1 - f.y0) * f64::from(i) / 5.0)
            .collect()
    };
    for v in ticks {
        let py = f.py(v);
        let _ = write!(
            svg,
            r##"<line x1="{l}" y1="{py:.1}" x2="{r}" y2="{py:.1}" stroke="#ddd"/>"##
        );
        let label = if f.log_y {
            format!("{v:.0e}")
        } else {
            format!("{v:.3}")
        };
        let _ = write!(
            svg,
            r#"<text x="{}" y="{:.1}" font-size="11" text-anchor="end">{label}</text>"#,
            l - 6.0,
            py + 4.0
        );
    }
}

/// A scatter plot with a log y axis; each point labelled.
pub fn scatter_log_y(title: &str, x_label: &str, y_label: &str, points: &[Point]) -> String {
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
    for (i, p) in points.iter().enumerate() {
        let (cx, cy) = (f.px(p.x), f.py(p.y.max(f.y0)));
        let color = PALETTE[i % PALETTE.len()];
        let _ = write!(
            svg,
            r#"<circle cx="{cx:.1}" cy="{cy:.1}" r="6" fill="{color}"><title>{}: x={:.3} y={:.3e}</title></circle>"#,
            esc(&p.label),
            p.x,
            p.y
        );
        let _ = write!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" fill="{color}">{}</text>"#,
            cx + 9.0,
            cy - 8.0,
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

/// Stacks panels vertically into one SVG document.
pub fn document(panels: &[String]) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{}" viewBox="0 0 {W} {}" font-family="sans-serif">"#,
        H * panels.len() as f64,
        H * panels.len() as f64
    );
    for (i, p) in panels.iter().enumerate() {
        let _ = write!(
            svg,
            r#"<g transform="translate(0 {})">{p}</g>"#,
            H * i as f64
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
        let svg = document(&[scatter_log_y("t", "bits per weight", "mean KLD", &pts)]);
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
        let svg = document(&[
            scatter_log_y("t", "x", "y", &one),
            lines("l", "x", "y", &[]),
        ]);
        assert!(!svg.contains("NaN") && !svg.contains("inf"), "{svg}");
    }
}
