//! Training curves as a PNG: loss (left panel) and train / test accuracy (right panel) per
//! epoch, drawn with `plotters` into an RGB buffer and encoded with `png`.
//!
//! Text needs a font, and no font file ships with mxgluon: one is looked up at run time (the
//! file named by `MXGLUON_PLOT_FONT`, then common TrueType locations of Linux, macOS and
//! Windows, then any `.ttf` under the usual font folders). Without one the plot is drawn
//! without any text (no title, tick labels or legend) rather than failing.

use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

/// One epoch of training.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EpochPoint {
    /// Epoch number (1 for the first, usually).
    pub epoch: usize,
    /// Mean training loss over the epoch.
    pub loss: f64,
    /// Training accuracy, a fraction in [0, 1].
    pub train_acc: f64,
    /// Test accuracy, a fraction in [0, 1].
    pub test_acc: f64,
}

/// Picture size in pixels.
const WIDTH: u32 = 1200;
const HEIGHT: u32 = 480;
/// The family name the found font is registered under (and the only one text ever uses).
const FAMILY: &str = "mxgluon-plot";
/// Series colours (readable on white, and told apart by most colour-blind readers).
const LOSS: RGBColor = RGBColor(200, 30, 30);
const TRAIN: RGBColor = RGBColor(31, 119, 180);
const TEST: RGBColor = RGBColor(255, 127, 14);
/// Environment variable naming a TrueType / OpenType font file to use.
const FONT_ENV: &str = "MXGLUON_PLOT_FONT";

const KNOWN_FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
    "/usr/share/fonts/dejavu-sans-fonts/DejaVuSans.ttf",
    "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
    "/usr/share/fonts/liberation-sans/LiberationSans-Regular.ttf",
    "/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/noto/NotoSans-Regular.ttf",
    "/usr/share/fonts/truetype/freefont/FreeSans.ttf",
    "/usr/local/share/fonts/DejaVuSans.ttf",
    "/System/Library/Fonts/Supplemental/Arial.ttf",
    "/Library/Fonts/Arial.ttf",
    "C:\\Windows\\Fonts\\arial.ttf",
];
const FONT_DIRS: &[&str] = &["/usr/share/fonts", "/usr/local/share/fonts"];

/// Writes the training curves of `history` to `path` as a PNG (WIDTH × HEIGHT).
///
/// Points with a non-finite value are left out. Fails only on an empty history or when the
/// file cannot be written.
pub fn plot_history(path: &Path, history: &[EpochPoint]) -> Result<(), String> {
    let font = font_registered();
    let rgb = render(history, font)?;
    write_png(path, &rgb)
}

/// Draws the two panels into an RGB buffer; text only if `text` (a font is registered).
fn render(history: &[EpochPoint], text: bool) -> Result<Vec<u8>, String> {
    if history.is_empty() {
        return Err("no epochs to plot".into());
    }
    let mut buf = vec![0u8; WIDTH as usize * HEIGHT as usize * 3];
    {
        let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        let epochs = epoch_range(history);

        let loss: Vec<(usize, f64)> = points(history, |p| p.loss);
        let loss_max = loss.iter().map(|p| p.1).fold(0.0f64, f64::max);
        let loss_min = loss.iter().map(|p| p.1).fold(0.0f64, f64::min);
        let loss_hi = if loss_max > loss_min {
            loss_max * 1.05
        } else {
            loss_min + 1.0
        };
        let loss_panel = Panel {
            title: "training loss",
            y_desc: "loss",
            y: loss_min..loss_hi,
            series: &[("loss", &loss, LOSS)],
            legend: SeriesLabelPosition::UpperRight,
        };
        loss_panel.draw(&left, text, epochs.clone())?;

        let train: Vec<(usize, f64)> = points(history, |p| p.train_acc);
        let test: Vec<(usize, f64)> = points(history, |p| p.test_acc);
        let acc = train.iter().chain(&test).map(|p| p.1);
        let acc_lo = acc.clone().fold(1.0f64, f64::min);
        let acc_hi = acc.fold(1.0f64, f64::max);
        // from a multiple of 0.1 below the lowest accuracy (at least 0) up to 1
        let lo = ((acc_lo - 0.02) * 10.0).floor().max(0.0) / 10.0;
        let hi = if acc_hi > lo { acc_hi } else { lo + 1.0 };
        let acc_panel = Panel {
            title: "accuracy",
            y_desc: "accuracy",
            y: lo..hi + (hi - lo) * 0.02,
            series: &[("train", &train, TRAIN), ("test", &test, TEST)],
            // accuracy rises to the upper right: keep the legend clear of it
            legend: SeriesLabelPosition::LowerRight,
        };
        acc_panel.draw(&right, text, epochs)?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(buf)
}

/// The finite `(epoch, value)` points of a series.
fn points(history: &[EpochPoint], f: impl Fn(&EpochPoint) -> f64) -> Vec<(usize, f64)> {
    history
        .iter()
        .map(|p| (p.epoch, f(p)))
        .filter(|p| p.1.is_finite())
        .collect()
}

/// The x range: first to last epoch, at least one wide.
fn epoch_range(history: &[EpochPoint]) -> std::ops::Range<usize> {
    let lo = history.iter().map(|p| p.epoch).min().unwrap_or(0);
    let hi = history.iter().map(|p| p.epoch).max().unwrap_or(0);
    lo..hi.max(lo + 1)
}

type Series<'a> = (&'a str, &'a [(usize, f64)], RGBColor);

/// One chart: lines with dots, and (with text) a title, tick labels and a legend.
struct Panel<'a> {
    title: &'a str,
    y_desc: &'a str,
    y: std::ops::Range<f64>,
    series: &'a [Series<'a>],
    legend: SeriesLabelPosition,
}

impl Panel<'_> {
    /// Draws the panel over epochs `x` into `area`, with text if `text`.
    fn draw(
        self,
        area: &DrawingArea<BitMapBackend<'_>, Shift>,
        text: bool,
        x: std::ops::Range<usize>,
    ) -> Result<(), String> {
        let Panel {
            title,
            y_desc,
            y,
            series,
            legend,
        } = self;
        let err = |e: &dyn std::fmt::Display| format!("drawing the {title} panel: {e}");
        let mut builder = ChartBuilder::on(area);
        builder.margin(16);
        if text {
            builder
                .caption(title, (FAMILY, 22))
                .x_label_area_size(40)
                .y_label_area_size(56);
        } else {
            builder.x_label_area_size(0).y_label_area_size(0);
        }
        let mut chart = builder.build_cartesian_2d(x, y).map_err(|e| err(&e))?;
        let mut mesh = chart.configure_mesh();
        mesh.light_line_style(RGBColor(235, 235, 235));
        if text {
            mesh.x_desc("epoch")
                .y_desc(y_desc)
                .label_style((FAMILY, 14))
                .axis_desc_style((FAMILY, 16))
                .x_labels(10)
                .y_labels(8)
                .y_label_formatter(&|v| format!("{v:.2}"));
        }
        // Without text the label areas have size 0, so plotters creates none and draws no label.
        mesh.draw().map_err(|e| err(&e))?;
        for &(name, pts, color) in series {
            let line = chart
                .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
                .map_err(|e| err(&e))?;
            if text {
                line.label(name).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
                });
            }
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(|e| err(&e))?;
        }
        if text {
            chart
                .configure_series_labels()
                .label_font((FAMILY, 14))
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(legend)
                .draw()
                .map_err(|e| err(&e))?;
        }
        Ok(())
    }
}

fn write_png(path: &Path, rgb: &[u8]) -> Result<(), String> {
    let err = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let file = std::fs::File::create(path).map_err(|e| err(&e))?;
    let mut enc = png::Encoder::new(BufWriter::new(file), WIDTH, HEIGHT);
    enc.set_color(png::ColorType::Rgb);
    enc.set_depth(png::BitDepth::Eight);
    let mut w = enc.write_header().map_err(|e| err(&e))?;
    w.write_image_data(rgb).map_err(|e| err(&e))?;
    w.finish().map_err(|e| err(&e))
}

/// Whether a font is registered under [`FAMILY`] (looked up and registered once).
fn font_registered() -> bool {
    static FOUND: OnceLock<bool> = OnceLock::new();
    *FOUND.get_or_init(|| {
        let first = std::env::var_os(FONT_ENV)
            .map(PathBuf::from)
            .into_iter()
            .chain(KNOWN_FONTS.iter().map(PathBuf::from));
        if first.into_iter().any(|p| register(&p)) {
            return true;
        }
        if scanned_fonts().iter().any(|p| register(p)) {
            return true;
        }
        log::warn!("no TrueType font found (set {FONT_ENV} to a .ttf file): the plot has no text");
        false
    })
}

/// Registers the font file at `path` under [`FAMILY`]; false if it is missing or unusable.
fn register(path: &Path) -> bool {
    // Font files are a few MB; a much larger file is not one.
    const MAX_FONT_BYTES: u64 = 64 << 20;
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() <= MAX_FONT_BYTES => {}
        _ => return false,
    }
    let Ok(bytes) = std::fs::read(path) else {
        return false;
    };
    // plotters keeps registered fonts for the whole process, as `&'static [u8]`: the bytes
    // are leaked, once per file tried (normally the first one).
    let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
    let ok = plotters::style::register_font(FAMILY, FontStyle::Normal, bytes).is_ok();
    if ok {
        log::debug!("plot font: {}", path.display());
    }
    ok
}

/// `.ttf` / `.otf` files under the usual font folders: regular sans-serif faces first, then
/// the rest, each group in path order.
fn scanned_fonts() -> Vec<PathBuf> {
    let mut found = Vec::new();
    for dir in FONT_DIRS {
        find_ttf(Path::new(dir), 4, &mut found);
    }
    found.sort_by_key(|p| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().to_lowercase())
            .unwrap_or_default();
        let regular_sans = name.contains("sans")
            && !["bold", "oblique", "italic", "mono", "light"]
                .iter()
                .any(|w| name.contains(w));
        (!regular_sans, p.clone())
    });
    found
}

/// Collects `.ttf` / `.otf` files under `dir`, `depth` folders deep at most.
fn find_ttf(dir: &Path, depth: usize, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            if depth > 0 {
                find_ttf(&p, depth - 1, out);
            }
        } else if p
            .extension()
            .and_then(|x| x.to_str())
            .is_some_and(|x| x.eq_ignore_ascii_case("ttf") || x.eq_ignore_ascii_case("otf"))
        {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history() -> Vec<EpochPoint> {
        (1..=12)
            .map(|e| {
                let t = e as f64;
                EpochPoint {
                    epoch: e,
                    loss: 2.3 * (-0.35 * t).exp() + 0.05,
                    train_acc: 1.0 - 0.9 * (-0.45 * t).exp(),
                    test_acc: 0.97 - 0.85 * (-0.4 * t).exp(),
                }
            })
            .collect()
    }

    fn tmp(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("mxgluon-plot-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    fn check_png(path: &Path) {
        let bytes = std::fs::read(path).unwrap();
        assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, at bytes 16..24
        assert_eq!(&bytes[16..20], &WIDTH.to_be_bytes());
        assert_eq!(&bytes[20..24], &HEIGHT.to_be_bytes());
        assert!(bytes.len() > 2_000, "{} bytes", bytes.len());
    }

    #[test]
    fn writes_a_png() {
        let d = tmp("png");
        let p = d.join("history.png");
        plot_history(&p, &history()).unwrap();
        check_png(&p);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn draws_without_any_font() {
        // `render(.., false)` must not touch text: the family it would use may well be
        // registered in this process, but the default family ("sans-serif") never is, so any
        // text drawn with a default style would fail here.
        let rgb = render(&history(), false).unwrap();
        assert_eq!(rgb.len(), (WIDTH * HEIGHT * 3) as usize);
        // the curves were drawn
        for c in [LOSS, TRAIN, TEST] {
            assert!(rgb.chunks_exact(3).any(|p| p == [c.0, c.1, c.2]), "{c:?}");
        }
        let d = tmp("nofont");
        let p = d.join("h.png");
        write_png(&p, &rgb).unwrap();
        check_png(&p);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn edge_cases() {
        let d = tmp("edge");
        assert!(plot_history(&d.join("e.png"), &[]).is_err());
        let one = [EpochPoint {
            epoch: 1,
            loss: f64::NAN,
            train_acc: 0.5,
            test_acc: 0.5,
        }];
        plot_history(&d.join("one.png"), &one).unwrap();
        check_png(&d.join("one.png"));
        let e = plot_history(&d.join("no/such/dir.png"), &history()).unwrap_err();
        assert!(e.contains("dir.png"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn font_files_are_found_and_bad_ones_refused() {
        let d = tmp("fonts");
        std::fs::create_dir_all(d.join("a/b")).unwrap();
        for f in ["x.ttf", "a/y.OTF", "a/b/z.ttf", "a/readme.txt"] {
            std::fs::write(d.join(f), b"not a font").unwrap();
        }
        let mut found = Vec::new();
        find_ttf(&d, 4, &mut found);
        found.sort();
        assert_eq!(
            found,
            vec![d.join("a/b/z.ttf"), d.join("a/y.OTF"), d.join("x.ttf")]
        );
        let mut shallow = Vec::new();
        find_ttf(&d, 0, &mut shallow);
        assert_eq!(shallow, vec![d.join("x.ttf")]);
        assert!(!register(&d.join("x.ttf")), "garbage is not a font");
        assert!(!register(&d.join("missing.ttf")));
        std::fs::remove_dir_all(&d).unwrap();
    }
}
