//! The hand-drawn SVG bar charts of the HTML report, with axes in round 1/2/5×10ⁿ steps.

use super::escape_html;

/// The smallest 1/2/5×10ⁿ step such that four steps cover `max`.
pub(super) fn axis_step(max: u64) -> u64 {
    let raw = max.div_ceil(4).max(1);
    let mut pow = 1u64;
    loop {
        for m in [1, 2, 5] {
            let step = pow.saturating_mul(m);
            if step >= raw {
                return step;
            }
        }
        pow = pow.saturating_mul(10);
    }
}

/// A hand-drawn SVG bar chart, one slot per day: the series side by side, or stacked.
pub(super) fn bar_chart(
    id: &str,
    title: &str,
    days: &[&str],
    series: &[(&str, &str, Vec<u64>)],
    stacked: bool,
) -> String {
    let (w, h, left, right, top, bottom) = (760.0, 280.0, 56.0, 12.0, 34.0, 40.0);
    let (plot_w, plot_h) = (w - left - right, h - top - bottom);
    let value = |s: usize, i: usize| series[s].2.get(i).copied().unwrap_or(0);
    let max = (0..days.len())
        .map(|i| {
            let vals = (0..series.len()).map(|s| value(s, i));
            if stacked {
                vals.fold(0u64, u64::saturating_add)
            } else {
                vals.max().unwrap_or(0)
            }
        })
        .max()
        .unwrap_or(0);
    let step = axis_step(max);
    let y_max = step.saturating_mul(4) as f64;
    let y = |v: f64| top + plot_h - v / y_max * plot_h;

    let mut s = format!(
        "<svg viewBox=\"0 0 {w} {h}\" role=\"img\" aria-labelledby=\"{id}-title\">\n\
         <title id=\"{id}-title\">{}</title>\n",
        escape_html(title)
    );
    for (j, (name, colour, _)) in series.iter().enumerate() {
        let x = left + j as f64 * 150.0;
        s.push_str(&format!(
            "<rect x=\"{x}\" y=\"10\" width=\"12\" height=\"12\" fill=\"{colour}\"/>\
             <text x=\"{}\" y=\"20\">{}</text>\n",
            x + 18.0,
            escape_html(name)
        ));
    }
    for k in 0..=4u64 {
        let v = step.saturating_mul(k);
        let gy = y(v as f64);
        s.push_str(&format!(
            "<line x1=\"{left}\" x2=\"{}\" y1=\"{gy:.1}\" y2=\"{gy:.1}\" stroke=\"{}\"/>\
             <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v}</text>\n",
            w - right,
            if k == 0 { "#333" } else { "#ddd" },
            left - 6.0,
            gy + 4.0
        ));
    }
    if days.is_empty() {
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">No activity in the period</text>\n",
            left + plot_w / 2.0,
            top + plot_h / 2.0
        ));
    }
    let slot = plot_w / days.len().max(1) as f64;
    let group = slot * 0.8;
    let per_slot = if stacked { 1 } else { series.len().max(1) };
    let bar_w = group / per_slot as f64;
    let every = days.len().div_ceil((plot_w / 48.0) as usize).max(1);
    for (i, day) in days.iter().enumerate() {
        let x0 = left + i as f64 * slot + slot * 0.1;
        let mut base = 0u64;
        for (j, (name, colour, _)) in series.iter().enumerate() {
            let v = value(j, i);
            if v == 0 {
                continue;
            }
            let x = x0 + if stacked { 0.0 } else { j as f64 * bar_w };
            let lo = if stacked { base } else { 0 };
            let hi = lo.saturating_add(v);
            base = hi;
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\" \
                 fill=\"{colour}\">\
                 <title>{}: {v} {}</title></rect>\n",
                y(hi as f64),
                y(lo as f64) - y(hi as f64),
                escape_html(day),
                escape_html(name)
            ));
        }
        if i % every == 0 {
            // "MM-DD" keeps the labels short; the table below has the full dates.
            let label = day.get(5..).filter(|l| !l.is_empty()).unwrap_or(day);
            s.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                x0 + group / 2.0,
                top + plot_h + 16.0,
                escape_html(label)
            ));
        }
    }
    s.push_str(&format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">UTC day</text>\n</svg>\n",
        left + plot_w / 2.0,
        h - 4.0
    ));
    s
}
