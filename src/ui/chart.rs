//! Bar charts drawn on the server as SVG: the pages need no chart library and no script.
//! Every value is also given as text (each bar's `<title>`, and the page shows the
//! figures in a table), so the chart is never the only way to read them.

use std::fmt::Write;

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 160.0;
const AXIS: f64 = 20.0;

/// One bar: its label (a day, `YYYY-MM-DD`) and value, and the value as people read it.
pub struct Bar {
    pub label: String,
    pub value: f64,
    pub shown: String,
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A bar per entry, scaled to the largest, labelled under the first and the last; the
/// whole chart is an image named `title`.
pub fn bars(title: &str, bars: &[Bar]) -> String {
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {WIDTH} {}" xmlns="http://www.w3.org/2000/svg">"#,
        escape(title),
        HEIGHT + AXIS
    );
    let max = bars.iter().map(|b| b.value).fold(0.0_f64, f64::max);
    let slot = WIDTH / bars.len().max(1) as f64;
    for (i, bar) in bars.iter().enumerate() {
        let h = if max > 0.0 {
            (bar.value / max * (HEIGHT - 4.0)).max(if bar.value > 0.0 { 1.0 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            svg,
            r#"<rect class="bar" x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{}: {}</title></rect>"#,
            i as f64 * slot + slot * 0.1,
            HEIGHT - h,
            slot * 0.8,
            escape(&bar.label),
            escape(&bar.shown)
        );
    }
    let _ = write!(
        svg,
        r#"<line class="axis" x1="0" y1="{HEIGHT}" x2="{WIDTH}" y2="{HEIGHT}"/>"#
    );
    if let (Some(first), Some(last)) = (bars.first(), bars.last()) {
        let _ = write!(
            svg,
            r#"<text x="0" y="{}" class="tick">{}</text><text x="{WIDTH}" y="{}" class="tick" text-anchor="end">{}</text>"#,
            HEIGHT + AXIS - 4.0,
            escape(&first.label),
            HEIGHT + AXIS - 4.0,
            escape(&last.label)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Each day from `first` to `last` (`YYYY-MM-DD`, inclusive), with the value `of` gives.
pub fn daily(first: i64, last: i64, of: impl Fn(&str) -> (f64, String)) -> Vec<Bar> {
    let mut out = Vec::new();
    let mut t = first;
    while t <= last && out.len() < 400 {
        let label = crate::clock::day_string(t);
        let (value, shown) = of(&label);
        out.push(Bar {
            label,
            value,
            shown,
        });
        t += 86_400;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_and_escape_their_text() {
        let svg = bars(
            "Spend <per day>",
            &[
                Bar {
                    label: "2026-12-01".into(),
                    value: 2.0,
                    shown: "$2".into(),
                },
                Bar {
                    label: "2026-12-02".into(),
                    value: 1.0,
                    shown: "<b>".into(),
                },
            ],
        );
        assert!(svg.contains(r#"aria-label="Spend &lt;per day&gt;""#));
        assert!(svg.contains(r#"height="156.0""#), "{svg}");
        assert!(svg.contains(r#"height="78.0""#));
        assert!(svg.contains("&lt;b&gt;") && !svg.contains("<b>"));
        let days = daily(1_796_083_200, 1_796_083_200 + 2 * 86_400, |_| {
            (0.0, String::new())
        });
        assert_eq!(days.len(), 3);
        assert_eq!(days[2].label, "2026-12-03");
    }
}
