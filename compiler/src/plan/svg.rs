//! The arena as a picture (`microgen plan MODEL --svg FILE`): time (schedule steps) across,
//! bytes down, one box per buffer from the step that writes it to the last that reads it.
//! Bytes an output shares with the input it overwrites are hatched; the step with the
//! most live bytes is marked, with dashed lines at the arena size and the lower bound.

use super::Plan;
use crate::ir::Graph;
use std::fmt::Write as _;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

fn color(i: usize) -> String {
    // Golden-angle hues: neighbours differ.
    let h = (i as f64 * 137.508) % 360.0;
    format!("hsl({h:.0},55%,72%)")
}

pub fn render(g: &Graph, plan: &Plan) -> String {
    let steps = plan.schedule.len().max(1);
    let (left, top, right, bottom) = (70.0, 76.0, 110.0, 120.0);
    let cw = (900.0 / steps as f64).clamp(18.0, 60.0).max(620.0 / steps as f64);
    let width = left + cw * steps as f64 + right;
    let plot_h = 640.0;
    let height = top + plot_h + bottom;
    let total = plan.arena_bytes.max(1) as f64;
    let sy = plot_h / total;
    let y_of = |b: usize| top + b as f64 * sy;
    let x_of = |s: usize| left + s as f64 * cw;
    let mut o = String::new();
    let _ = writeln!(o, r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" viewBox="0 0 {width:.0} {height:.0}" font-family="sans-serif" font-size="11">"#);
    let _ = writeln!(
        o,
        r##"<defs><pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><rect width="6" height="6" fill="none"/><line x1="0" y1="0" x2="0" y2="6" stroke="#b00" stroke-width="2"/></pattern></defs>"##
    );
    let _ = writeln!(o, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let name = std::path::Path::new(&g.name).file_name().map(|f| f.to_string_lossy().into_owned()).unwrap_or_else(|| g.name.clone());
    let _ = writeln!(
        o,
        r#"<text x="{left}" y="20" font-size="14"><tspan font-weight="bold">{}</tspan>: arena {} B, lower bound {} B</text>"#,
        esc(&name),
        plan.arena_bytes,
        plan.lower_bound,
    );
    let _ = writeln!(
        o,
        r##"<text x="{left}" y="36" fill="#555">{} buffers, {} written over a dying input; bound: {}</text>"##,
        plan.buffers.len(),
        plan.overlaps.len(),
        if plan.lower_bound_exact { "least peak of live bytes over all schedules" } else { "per operator" }
    );
    let _ = writeln!(o, r##"<text x="{left}" y="50" fill="#555">steps (operators) across, bytes down; hatched: bytes an output shares with the input it overwrites</text>"##);
    // Frame and byte axis.
    let _ = writeln!(o, r##"<rect x="{left}" y="{top}" width="{:.1}" height="{plot_h}" fill="#f7f7f7" stroke="#999"/>"##, cw * steps as f64);
    let ticks = 8;
    for k in 0..=ticks {
        let b = plan.arena_bytes * k / ticks;
        let y = y_of(b);
        let _ = writeln!(o, r##"<line x1="{:.1}" y1="{y:.1}" x2="{left}" y2="{y:.1}" stroke="#999"/><text x="{:.1}" y="{:.1}" text-anchor="end">{b}</text>"##, left - 5.0, left - 8.0, y + 4.0);
    }
    // Step axis: operator names.
    for (s, &n) in plan.schedule.iter().enumerate() {
        let node = &g.nodes[n];
        let x = x_of(s) + cw / 2.0;
        let yb = top + plot_h + 12.0;
        let _ = writeln!(
            o,
            r#"<text x="{x:.1}" y="{yb:.1}" transform="rotate(60 {x:.1} {yb:.1})" font-size="9">{} {}</text>"#,
            s,
            esc(&node.op.name().to_lowercase())
        );
    }
    // Buffers.
    for b in &plan.buffers {
        let t = g.t(b.root);
        let (x, w) = (x_of(b.first), cw * (b.last - b.first + 1) as f64);
        let (y, h) = (y_of(b.offset), (b.bytes as f64 * sy).max(0.8));
        let _ = writeln!(
            o,
            r##"<rect x="{x:.1}" y="{y:.2}" width="{w:.1}" height="{h:.2}" fill="{}" fill-opacity="0.85" stroke="#333" stroke-width="0.6"><title>tensor {} '{}' {:?} {}: [{}..{}) steps {}..={}</title></rect>"##,
            color(b.root),
            t.index,
            esc(&t.name),
            t.shape,
            t.dtype,
            b.offset,
            b.offset + b.bytes,
            b.first,
            b.last
        );
        if h > 12.0 && w > 24.0 {
            let _ = writeln!(o, r#"<text x="{:.1}" y="{:.1}" font-size="10">t{} {}B</text>"#, x + 3.0, y + 11.0, t.index, b.bytes);
        }
    }
    // Shared bytes at overlapping steps.
    for ov in &plan.overlaps {
        let (Some(xb), Some(yb)) = (plan.buffers.iter().find(|b| b.root == ov.input), plan.buffers.iter().find(|b| b.root == ov.output)) else { continue };
        let lo = xb.offset.max(yb.offset);
        let hi = (xb.offset + xb.bytes).min(yb.offset + yb.bytes);
        if hi > lo {
            let _ = writeln!(
                o,
                r##"<rect x="{:.1}" y="{:.2}" width="{cw:.1}" height="{:.2}" fill="url(#hatch)" stroke="#b00" stroke-width="0.8"><title>step {}: output t{} over input t{}, {} B shared, shift {}{}</title></rect>"##,
                x_of(ov.step),
                y_of(lo),
                ((hi - lo) as f64 * sy).max(0.8),
                ov.step,
                g.t(ov.output).index,
                g.t(ov.input).index,
                ov.bytes,
                ov.shift,
                if ov.reverse { ", kernel runs backwards" } else { "" }
            );
        }
    }
    // Peak step and the two levels.
    if let Some((ps, &pb)) = plan.step_bytes.iter().enumerate().max_by_key(|(s, b)| (**b, usize::MAX - s)) {
        let x = x_of(ps);
        let _ = writeln!(o, r##"<rect x="{x:.1}" y="{top}" width="{cw:.1}" height="{plot_h}" fill="none" stroke="#d40" stroke-width="2"/>"##);
        let _ = writeln!(o, r##"<text x="{:.1}" y="{:.1}" fill="#d40" font-weight="bold">peak: step {ps}, {pb} B must be live</text>"##, x, top - 6.0);
    }
    // The lower bound (dashed) and the arena's end (the frame's bottom edge), labelled in
    // the right margin.
    let (yl, ya) = (y_of(plan.lower_bound), y_of(plan.arena_bytes));
    let xr = x_of(steps);
    let _ = writeln!(o, r##"<line x1="{left}" y1="{yl:.1}" x2="{:.1}" y2="{yl:.1}" stroke="#0a0" stroke-dasharray="6,3" stroke-width="1.5"/>"##, xr + 6.0);
    let _ = writeln!(o, r##"<text x="{:.1}" y="{:.1}" fill="#0a0">lower bound</text><text x="{:.1}" y="{:.1}" fill="#0a0">{} B</text>"##, xr + 8.0, yl - 14.0, xr + 8.0, yl - 2.0, plan.lower_bound);
    let _ = writeln!(o, r##"<text x="{:.1}" y="{:.1}" font-weight="bold">arena</text><text x="{:.1}" y="{:.1}" font-weight="bold">{} B</text>"##, xr + 8.0, ya + 14.0, xr + 8.0, ya + 26.0, plan.arena_bytes);
    let _ = writeln!(o, "</svg>");
    o
}
