//! The report as one self-contained HTML page: no scripts, no external fonts or images; charts
//! are inline SVG, so the page renders the same in a browser, a mail client or a headless
//! screenshot.

use std::fmt::Write as _;

use super::{DayPoint, Estimate, ForecastReport, ScopeLine};

/// Escapes text for HTML element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `1234567.891` → `1,234,567.89`.
fn grouped(v: f64, decimals: usize) -> String {
    let s = format!("{:.*}", decimals, v.abs());
    let (int, frac) = s.split_once('.').map_or((s.as_str(), ""), |(a, b)| (a, b));
    let mut out = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    if v < 0.0 && out.chars().any(|c| c != '0' && c != '.' && c != ',') {
        out.insert(0, '-');
    }
    out
}

fn money(v: f64, currency: &str) -> String {
    let decimals = if v.abs() >= 10_000.0 { 0 } else { 2 };
    if currency == "USD" {
        let g = grouped(v, decimals);
        match g.strip_prefix('-') {
            Some(rest) => format!("-${rest}"),
            None => format!("${g}"),
        }
    } else {
        format!("{} {currency}", grouped(v, decimals))
    }
}

/// A short money label for chart axes: `$1.2k`, `$3.4M`.
fn money_short(v: f64, currency: &str) -> String {
    let (x, suffix) = if v.abs() >= 1e6 {
        (v / 1e6, "M")
    } else if v.abs() >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let num = if x.fract().abs() < 1e-9 || x.abs() >= 100.0 {
        format!("{x:.0}")
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    };
    let num = if num.contains('.') {
        num.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        num
    };
    if currency == "USD" {
        format!("${num}{suffix}")
    } else {
        format!("{num}{suffix}")
    }
}

fn pct(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_string(), |p| format!("{p:+.1}%"))
}

/// A round step near `span / 5`: 1, 2, 2.5 or 5 times a power of ten.
fn nice_step(span: f64) -> f64 {
    if span <= 0.0 || !span.is_finite() {
        return 1.0;
    }
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 2.5 {
        2.5
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

fn short_date(date: &str) -> String {
    chrono::NaiveDate::parse_from_str(date, "%Y-%m-%d")
        .map(|d| d.format("%b %-d").to_string())
        .unwrap_or_else(|_| date.to_string())
}

const W: f64 = 960.0;
const H: f64 = 360.0;
const ML: f64 = 76.0;
const MR: f64 = 24.0;
const MT: f64 = 40.0;
const MB: f64 = 44.0;

/// The main chart: daily actuals, then the forecast with its 80% and 95% bands.
fn forecast_chart(points: &[DayPoint], currency: &str) -> String {
    if points.len() < 2 {
        return "<p class=\"muted\">Not enough days to draw a chart yet.</p>".into();
    }
    let vals = points.iter().flat_map(|p| {
        [p.actual, p.forecast, p.upper_95, p.lower_95]
            .into_iter()
            .flatten()
    });
    let (mut lo, mut hi) = (0f64, f64::MIN);
    for v in vals {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let step = nice_step(hi - lo);
    let y0 = (lo / step).floor() * step;
    let y1 = (hi / step).ceil() * step;
    let n = points.len();
    let x = |i: usize| ML + i as f64 * (W - ML - MR) / (n - 1) as f64;
    let y = |v: f64| MT + (y1 - v) / (y1 - y0) * (H - MT - MB);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {W} {H}" width="100%" role="img" aria-label="Daily cost: actuals and forecast" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">"#
    );
    // Grid and y labels.
    let mut v = y0;
    while v <= y1 + step * 0.01 {
        let yy = y(v);
        let _ = write!(
            svg,
            r##"<line x1="{ML}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#e5e7eb"/><text x="{}" y="{:.1}" text-anchor="end" fill="#4b5563">{}</text>"##,
            W - MR,
            ML - 8.0,
            yy + 4.0,
            esc(&money_short(v, currency))
        );
        v += step;
    }
    // x labels: about nine, on whole-week spacing.
    let every = (n.div_ceil(9)).div_ceil(7).max(1) * 7;
    let every = if n <= 21 { 3.max(n / 7) } else { every };
    for (i, p) in points.iter().enumerate() {
        if i % every == 0 {
            let _ = write!(
                svg,
                r##"<line x1="{0:.1}" x2="{0:.1}" y1="{1}" y2="{2}" stroke="#9ca3af"/><text x="{0:.1}" y="{3}" text-anchor="middle" fill="#4b5563">{4}</text>"##,
                x(i),
                H - MB,
                H - MB + 5.0,
                H - MB + 20.0,
                esc(&short_date(&p.date))
            );
        }
    }
    let first_fc = points.iter().position(|p| p.forecast.is_some());
    // Bands, widest first.
    for (lo_of, hi_of, fill) in [
        (
            (|p: &DayPoint| p.lower_95) as fn(&DayPoint) -> Option<f64>,
            (|p: &DayPoint| p.upper_95) as fn(&DayPoint) -> Option<f64>,
            "#dbeafe",
        ),
        (
            |p: &DayPoint| p.lower_80,
            |p: &DayPoint| p.upper_80,
            "#93c5fd",
        ),
    ] {
        let upper: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| hi_of(p).map(|v| (x(i), y(v))))
            .collect();
        let lower: Vec<(f64, f64)> = points
            .iter()
            .enumerate()
            .filter_map(|(i, p)| lo_of(p).map(|v| (x(i), y(v))))
            .collect();
        if upper.len() >= 2 {
            let mut d = String::new();
            for (k, (px, py)) in upper.iter().chain(lower.iter().rev()).enumerate() {
                let _ = write!(d, "{}{px:.1},{py:.1} ", if k == 0 { "M" } else { "L" });
            }
            let _ = write!(svg, r#"<path d="{d}Z" fill="{fill}" stroke="none"/>"#);
        }
    }
    // Actuals.
    let actual: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.actual.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect();
    if actual.len() >= 2 {
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#111827" stroke-width="2" stroke-linejoin="round"/>"##,
            actual.join(" ")
        );
    }
    // Forecast, joined to the last actual.
    if let Some(f) = first_fc {
        let mut pts: Vec<String> = Vec::new();
        if f > 0 {
            if let Some(v) = points[f - 1].actual {
                pts.push(format!("{:.1},{:.1}", x(f - 1), y(v)));
            }
        }
        pts.extend(
            points
                .iter()
                .enumerate()
                .skip(f)
                .filter_map(|(i, p)| p.forecast.map(|v| format!("{:.1},{:.1}", x(i), y(v)))),
        );
        let _ = write!(
            svg,
            r##"<polyline points="{}" fill="none" stroke="#1d4ed8" stroke-width="2.5" stroke-dasharray="7 5"/>"##,
            pts.join(" ")
        );
        if f > 0 {
            let xd = (x(f - 1) + x(f)) / 2.0;
            let _ = write!(
                svg,
                r##"<line x1="{xd:.1}" x2="{xd:.1}" y1="{MT}" y2="{}" stroke="#6b7280" stroke-dasharray="3 3"/><text x="{:.1}" y="{}" fill="#374151">forecast →</text>"##,
                H - MB,
                xd + 6.0,
                MT + 14.0
            );
        }
    }
    // Legend, above the plot.
    let _ = write!(
        svg,
        r##"<g transform="translate({ML},14)"><line x1="0" x2="22" y1="0" y2="0" stroke="#111827" stroke-width="2"/><text x="28" y="4" fill="#111827">actual</text><line x1="90" x2="112" y1="0" y2="0" stroke="#1d4ed8" stroke-width="2.5" stroke-dasharray="7 5"/><text x="118" y="4" fill="#111827">forecast</text><rect x="190" y="-6" width="22" height="12" fill="#93c5fd"/><text x="218" y="4" fill="#111827">80% interval</text><rect x="318" y="-6" width="22" height="12" fill="#dbeafe"/><text x="346" y="4" fill="#111827">95% interval</text></g>"##
    );
    svg.push_str("</svg>");
    svg
}

/// Horizontal bars per provider: last 30 days' actual cost against the next 30 days' forecast,
/// with the 80% interval as a whisker.
fn provider_chart(lines: &[ScopeLine], currency: &str) -> String {
    if lines.is_empty() {
        return String::new();
    }
    let row = 44.0;
    let label_w = 130.0;
    let value_w = 180.0;
    let h = 36.0 + row * lines.len() as f64;
    let max = lines
        .iter()
        .map(|l| {
            l.last_30_days
                .max(l.next_30_days.map_or(0.0, |e| e.upper_80))
        })
        .fold(0.0f64, f64::max)
        .max(1e-9);
    let plot = W - label_w - value_w - 20.0;
    let xs = |v: f64| label_w + (v.max(0.0) / max) * plot;
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg viewBox="0 0 {W} {h}" width="100%" role="img" aria-label="Cost by provider" xmlns="http://www.w3.org/2000/svg" font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif" font-size="12">"#
    );
    let _ = write!(
        svg,
        r##"<g transform="translate({label_w},12)"><rect x="0" y="-7" width="14" height="10" fill="#9ca3af"/><text x="20" y="2" fill="#111827">last 30 days</text><rect x="120" y="-7" width="14" height="10" fill="#1d4ed8"/><text x="140" y="2" fill="#111827">next 30 days (forecast, 80% whisker)</text></g>"##
    );
    for (i, l) in lines.iter().enumerate() {
        let top = 28.0 + row * i as f64;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{:.1}" text-anchor="end" fill="#111827" font-weight="600">{}</text>"##,
            label_w - 10.0,
            top + 19.0,
            esc(&l.key)
        );
        let _ = write!(
            svg,
            r##"<rect x="{label_w}" y="{top:.1}" width="{:.1}" height="14" fill="#9ca3af"/>"##,
            xs(l.last_30_days) - label_w
        );
        let mut right = format!("{} → ", money(l.last_30_days, currency));
        if let Some(e) = l.next_30_days {
            let _ = write!(
                svg,
                r##"<rect x="{label_w}" y="{:.1}" width="{:.1}" height="14" fill="#1d4ed8"/><line x1="{:.1}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#111827"/>"##,
                top + 16.0,
                xs(e.forecast) - label_w,
                xs(e.lower_80),
                xs(e.upper_80),
                top + 23.0,
                top + 23.0
            );
            right.push_str(&money(e.forecast, currency));
        } else {
            right.push_str("no forecast");
        }
        let _ = write!(
            svg,
            r##"<text x="{}" y="{:.1}" fill="#374151">{}</text>"##,
            W - value_w,
            top + 19.0,
            esc(&right)
        );
    }
    svg.push_str("</svg>");
    svg
}

fn range(e: &Estimate, currency: &str) -> String {
    format!(
        "80%: {} – {} · 95%: {} – {}",
        money(e.lower_80, currency),
        money(e.upper_80, currency),
        money(e.lower_95, currency),
        money(e.upper_95, currency)
    )
}

const STYLE: &str = r"
body{margin:0;background:#f3f4f6;color:#111827;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:14px;line-height:1.45}
main{max-width:1000px;margin:0 auto;padding:24px}
header{background:#111827;color:#f9fafb;padding:20px 24px;border-radius:10px}
header h1{margin:0 0 4px;font-size:22px}
header p{margin:0;color:#d1d5db}
.cards{display:grid;grid-template-columns:repeat(4,1fr);gap:12px;margin:16px 0}
.card{background:#fff;border-radius:10px;padding:14px 16px;box-shadow:0 1px 2px rgba(0,0,0,.06)}
.card .label{color:#4b5563;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .value{font-size:24px;font-weight:700;margin:4px 0}
.card .sub{color:#4b5563;font-size:12px}
section{background:#fff;border-radius:10px;padding:16px 20px;margin:16px 0;box-shadow:0 1px 2px rgba(0,0,0,.06)}
h2{font-size:17px;margin:0 0 10px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e7eb;vertical-align:top}
th{color:#374151;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
tr:nth-child(even) td{background:#f9fafb}
.badge{display:inline-block;padding:1px 8px;border-radius:999px;font-size:12px;font-weight:600;white-space:nowrap}
.idle{background:#fee2e2;color:#991b1b}.underutilized{background:#fef3c7;color:#92400e}
.oversized{background:#e0e7ff;color:#3730a3}.provider_disparity{background:#dcfce7;color:#166534}
.up{color:#b91c1c}.down{color:#15803d}.muted{color:#6b7280}
footer{color:#6b7280;font-size:12px;margin:16px 4px}
";

/// Renders the report as a self-contained HTML page.
pub fn render(r: &ForecastReport) -> String {
    let c = r.currency.as_str();
    let mut h = String::with_capacity(64 * 1024);
    let month = chrono::NaiveDate::parse_from_str(&r.period_start, "%Y-%m-%d")
        .map(|d| d.format("%B %Y").to_string())
        .unwrap_or_else(|_| r.period_start.clone());
    let _ = write!(
        h,
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>opslake cost forecast · {}</title><style>{STYLE}</style></head><body><main>",
        esc(&month)
    );
    let _ = write!(
        h,
        "<header><h1>Cost forecast · {}</h1><p>Generated {} ({}) · actuals up to {} · report <code>{}</code></p></header>",
        esc(&month),
        esc(&r.generated_at),
        esc(&r.trigger),
        esc(r.as_of.as_deref().unwrap_or("–")),
        esc(&r.report_id)
    );
    // Key figures.
    h.push_str("<div class=\"cards\">");
    let card = |h: &mut String, label: &str, value: String, sub: String| {
        let _ = write!(
            h,
            "<div class=\"card\"><div class=\"label\">{}</div><div class=\"value\">{}</div><div class=\"sub\">{}</div></div>",
            esc(label),
            esc(&value),
            esc(&sub)
        );
    };
    card(
        &mut h,
        "Spend this month",
        money(r.spend.month_to_date, c),
        format!(
            "last 7 days {} ({} week on week)",
            money(r.spend.last_7_days, c),
            pct(r.spend.change_7_days_pct)
        ),
    );
    match &r.month_end {
        Some(e) => card(
            &mut h,
            "Month-end forecast",
            money(e.forecast, c),
            format!("80%: {} – {}", money(e.lower_80, c), money(e.upper_80, c)),
        ),
        None => card(
            &mut h,
            "Month-end forecast",
            "–".into(),
            "no forecast".into(),
        ),
    }
    match &r.next_30_days {
        Some(e) => card(
            &mut h,
            "Next 30 days",
            money(e.forecast, c),
            format!("80%: {} – {}", money(e.lower_80, c), money(e.upper_80, c)),
        ),
        None => card(&mut h, "Next 30 days", "–".into(), "no forecast".into()),
    }
    card(
        &mut h,
        "Potential savings",
        format!("{}/mo", money(r.potential_monthly_savings, c)),
        format!("{} opportunities", r.opportunities.len()),
    );
    h.push_str("</div>");

    let _ = write!(
        h,
        "<section><h2>Daily cost and forecast</h2>{}",
        forecast_chart(&r.daily, c)
    );
    if let Some(e) = &r.month_end {
        let _ = write!(
            h,
            "<p>Month end: <b>{}</b> ({}).",
            money(e.forecast, c),
            esc(&range(e, c))
        );
        if let Some(n) = &r.next_30_days {
            let _ = write!(
                h,
                " Next 30 days: <b>{}</b> ({}).",
                money(n.forecast, c),
                esc(&range(n, c))
            );
        }
        h.push_str("</p>");
    }
    if let Some(q) = &r.quality {
        let others: Vec<String> = q
            .methods
            .iter()
            .map(|(m, v)| format!("{m} {}", v.map_or("–".into(), |v| format!("{v:.2}"))))
            .collect();
        let _ = write!(
            h,
            "<p class=\"muted\">Method: <b>{}</b>, chosen by backtest from {} origins: MASE {} (below 1 beats the seasonal naive forecast), sMAPE {}, actuals inside the 80% / 95% intervals {} / {}. All methods' MASE: {}.</p>",
            esc(&q.method),
            q.origins,
            q.mase.map_or("–".into(), |v| format!("{v:.2}")),
            q.smape.map_or("–".into(), |v| format!("{v:.1}%")),
            q.coverage_80.map_or("–".into(), |v| format!("{:.0}%", v * 100.0)),
            q.coverage_95.map_or("–".into(), |v| format!("{:.0}%", v * 100.0)),
            esc(&others.join(", "))
        );
    }
    h.push_str("</section>");

    if !r.providers.is_empty() {
        let _ = write!(
            h,
            "<section><h2>By provider</h2>{}</section>",
            provider_chart(&r.providers, c)
        );
    }

    h.push_str("<section><h2>Biggest movers (last 7 days against the 7 before)</h2>");
    if r.movers.is_empty() {
        h.push_str("<p class=\"muted\">No change worth noting.</p>");
    } else {
        h.push_str("<table><tr><th>scope</th><th>name</th><th class=\"num\">previous 7 days</th><th class=\"num\">last 7 days</th><th class=\"num\">change</th></tr>");
        for m in &r.movers {
            let class = if m.change > 0.0 { "up" } else { "down" };
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num {class}\">{} ({})</td></tr>",
                esc(&m.scope),
                esc(&m.key),
                money(m.previous_7_days, c),
                money(m.last_7_days, c),
                money(m.change, c),
                pct(m.change_pct)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    h.push_str("<section><h2>Cost spikes (last 14 days)</h2>");
    if r.spikes.is_empty() {
        h.push_str("<p class=\"muted\">No day cost far more than the 4 weeks before it.</p>");
    } else {
        h.push_str("<table><tr><th>day</th><th>scope</th><th>name</th><th class=\"num\">cost</th><th class=\"num\">typical day</th></tr>");
        for s in &r.spikes {
            let _ = write!(
                h,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"num up\">{}</td><td class=\"num\">{}</td></tr>",
                esc(&s.date),
                esc(&s.scope),
                esc(&s.key),
                money(s.cost, c),
                money(s.typical, c)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    let _ = write!(
        h,
        "<section><h2>Savings opportunities · {}/month in all</h2>",
        money(r.potential_monthly_savings, c)
    );
    if r.opportunities.is_empty() {
        h.push_str("<p class=\"muted\">None found: every resource with utilization data is in use and priced in line.</p>");
    } else {
        h.push_str("<table><tr><th>kind</th><th>resource</th><th class=\"num\">monthly cost</th><th class=\"num\">saves / month</th><th>recommendation</th></tr>");
        for o in &r.opportunities {
            let _ = write!(
                h,
                "<tr><td><span class=\"badge {}\">{}</span></td><td>{}<br><span class=\"muted\">{}</span></td><td class=\"num\">{}</td><td class=\"num\"><b>{}</b></td><td>{}</td></tr>",
                esc(&o.kind),
                esc(&o.kind.replace('_', " ")),
                esc(&o.resource_id),
                esc(&o.provider),
                money(o.monthly_cost, &o.currency),
                money(o.estimated_monthly_savings, &o.currency),
                esc(&o.recommendation)
            );
        }
        h.push_str("</table>");
    }
    h.push_str("</section>");

    if !r.services.is_empty() {
        h.push_str("<section><h2>By service</h2><table><tr><th>service</th><th class=\"num\">last 30 days</th><th class=\"num\">next 30 days</th><th>80% interval</th><th>method</th></tr>");
        for s in r.services.iter().take(15) {
            let (next, band) = match &s.next_30_days {
                Some(e) => (
                    money(e.forecast, c),
                    format!("{} – {}", money(e.lower_80, c), money(e.upper_80, c)),
                ),
                None => ("–".into(), "–".into()),
            };
            let _ = write!(
                h,
                "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                esc(&s.key),
                money(s.last_30_days, c),
                esc(&next),
                esc(&band),
                esc(s.method.as_deref().unwrap_or("too short to forecast"))
            );
        }
        h.push_str("</table></section>");
    }

    if !r.not_forecast.is_empty() || !r.notes.is_empty() {
        h.push_str("<section><h2>Notes</h2><ul>");
        for n in &r.notes {
            let _ = write!(h, "<li>{}</li>", esc(n));
        }
        if !r.not_forecast.is_empty() {
            let names: Vec<String> = r
                .not_forecast
                .iter()
                .take(8)
                .map(|n| format!("{} {}", n.scope, n.key))
                .collect();
            let _ = write!(
                h,
                "<li>{} series have too little history to forecast and say so instead of guessing ({}{}): {}.</li>",
                r.not_forecast.len(),
                esc(&names.join(", ")),
                if r.not_forecast.len() > 8 { ", …" } else { "" },
                esc(&r.not_forecast[0].reason)
            );
        }
        h.push_str("</ul></section>");
    }
    let _ = write!(
        h,
        "<footer>opslake · {} · the same report as JSON: <code>GET /api/v1/reports/{}</code></footer></main></body></html>",
        esc(&r.summary),
        esc(&r.report_id)
    );
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_well() {
        assert_eq!(money(1_234_567.891, "USD"), "$1,234,568");
        assert_eq!(money(1234.5, "USD"), "$1,234.50");
        assert_eq!(money(-3.0, "USD"), "-$3.00");
        assert_eq!(money(12.0, "EUR"), "12.00 EUR");
        assert_eq!(money_short(2500.0, "USD"), "$2.5k");
        assert_eq!(money_short(200.0, "USD"), "$200");
        assert_eq!(nice_step(1234.0), 250.0);
        assert_eq!(esc("<a href='x'>&"), "&lt;a href=&#39;x&#39;&gt;&amp;");
    }
}
