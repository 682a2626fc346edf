//! Drawing pieces shared by the charts (plotters, SVG backend): the drawing area and result
//! types, the colour of series `i` (the same engine or allocator keeps its colour in every
//! panel), a bar in a segmented panel and a value written above a bar.
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;
pub type DrawResult = Result<(), DrawingAreaErrorKind<std::io::Error>>;

/// The colour of series `i`.
pub fn colour(i: usize) -> RGBColor {
    let c = Palette99::pick(i).to_rgba();
    RGBColor(c.0, c.1, c.2)
}

/// Bar `i` of a panel with one segment per series, from `base` up to `v`, in colour `i`.
pub fn bar(i: u32, base: f64, v: f64) -> Rectangle<(SegmentValue<u32>, f64)> {
    let mut r = Rectangle::new(
        [
            (SegmentValue::Exact(i), base),
            (SegmentValue::Exact(i + 1), v),
        ],
        colour(i as usize).filled(),
    );
    r.set_margin(0, 0, 4, 4);
    r
}

/// `text` centred just above the point `(x, v)` (log axes have few labels).
pub fn value_label<X>(x: X, v: f64, text: String) -> Text<'static, (X, f64), String> {
    let style =
        TextStyle::from(("sans-serif", 10).into_font()).pos(Pos::new(HPos::Center, VPos::Bottom));
    Text::new(text, (x, v), style)
}
