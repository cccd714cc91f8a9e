//! The report as one self-contained HTML page: no scripts, no external fonts or images; charts
//! are inline SVG, so the page renders the same in a browser, a mail client or a headless
//! screenshot.
//!
//! The page is a `maud` template: every value spliced into it, in text or in an attribute, is
//! escaped by the template itself, so no field of a bill (currency, service, resource id, a
//! tag) can add markup. The only unescaped text is the constant style sheet. A
//! Content-Security-Policy in the page allows no script either way.

use std::fmt::Write as _;

use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::{DayPoint, Estimate, ForecastReport, ScopeLine};

/// The page's own Content-Security-Policy (the API sends a stricter one with it).
const PAGE_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

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
fn forecast_chart(points: &[DayPoint], currency: &str) -> Markup {
    if points.len() < 2 {
        return html! { p.muted { "Not enough days to draw a chart yet." } };
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
    let mut grid = Vec::new();
    let mut v = y0;
    while v <= y1 + step * 0.01 {
        grid.push((y(v), money_short(v, currency)));
        v += step;
    }
    // x labels: about nine, on whole-week spacing.
    let every = (n.div_ceil(9)).div_ceil(7).max(1) * 7;
    let every = if n <= 21 { 3.max(n / 7) } else { every };
    // Bands, widest first: (path, fill).
    let band = |lo_of: fn(&DayPoint) -> Option<f64>, hi_of: fn(&DayPoint) -> Option<f64>| {
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
        (upper.len() >= 2).then(|| {
            let mut d = String::new();
            for (k, (px, py)) in upper.iter().chain(lower.iter().rev()).enumerate() {
                let _ = write!(d, "{}{px:.1},{py:.1} ", if k == 0 { "M" } else { "L" });
            }
            d.push('Z');
            d
        })
    };
    let bands = [
        (band(|p| p.lower_95, |p| p.upper_95), "#dbeafe"),
        (band(|p| p.lower_80, |p| p.upper_80), "#93c5fd"),
    ];
    let actual: Vec<String> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.actual.map(|v| format!("{:.1},{:.1}", x(i), y(v))))
        .collect();
    // The forecast, joined to the last actual, and where it starts.
    let first_fc = points.iter().position(|p| p.forecast.is_some());
    let forecast: Option<(String, Option<f64>)> =
        first_fc.map(|f| {
            let join = f
                .checked_sub(1)
                .and_then(|b| points[b].actual.map(|v| format!("{:.1},{:.1}", x(b), y(v))));
            let pts: Vec<String> =
                join.into_iter()
                    .chain(points.iter().enumerate().skip(f).filter_map(|(i, p)| {
                        p.forecast.map(|v| format!("{:.1},{:.1}", x(i), y(v)))
                    }))
                    .collect();
            let divider = (f > 0).then(|| (x(f - 1) + x(f)) / 2.0);
            (pts.join(" "), divider)
        });
    html! {
        svg viewBox={"0 0 " (W) " " (H)} width="100%" role="img"
            aria-label="Daily cost: actuals and forecast" xmlns="http://www.w3.org/2000/svg"
            font-family=(FONT) font-size="12" {
            @for (yy, label) in &grid {
                line x1=(ML) x2=(W - MR) y1=(f1(*yy)) y2=(f1(*yy)) stroke="#e5e7eb" {}
                text x=(ML - 8.0) y=(f1(yy + 4.0)) text-anchor="end" fill="#4b5563" { (label) }
            }
            @for (i, p) in points.iter().enumerate().filter(|(i, _)| i % every == 0) {
                line x1=(f1(x(i))) x2=(f1(x(i))) y1=(H - MB) y2=(H - MB + 5.0) stroke="#9ca3af" {}
                text x=(f1(x(i))) y=(H - MB + 20.0) text-anchor="middle" fill="#4b5563" {
                    (short_date(&p.date))
                }
            }
            @for (d, fill) in &bands {
                @if let Some(d) = d {
                    path d=(d) fill=(fill) stroke="none" {}
                }
            }
            @if actual.len() >= 2 {
                polyline points=(actual.join(" ")) fill="none" stroke="#111827" stroke-width="2"
                    stroke-linejoin="round" {}
            }
            @if let Some((pts, divider)) = &forecast {
                polyline points=(pts) fill="none" stroke="#1d4ed8" stroke-width="2.5"
                    stroke-dasharray="7 5" {}
                @if let Some(xd) = divider {
                    line x1=(f1(*xd)) x2=(f1(*xd)) y1=(MT) y2=(H - MB) stroke="#6b7280"
                        stroke-dasharray="3 3" {}
                    text x=(f1(xd + 6.0)) y=(MT + 14.0) fill="#374151" { "forecast →" }
                }
            }
            // The legend, above the plot.
            g transform={"translate(" (ML) ",14)"} {
                line x1="0" x2="22" y1="0" y2="0" stroke="#111827" stroke-width="2" {}
                text x="28" y="4" fill="#111827" { "actual" }
                line x1="90" x2="112" y1="0" y2="0" stroke="#1d4ed8" stroke-width="2.5"
                    stroke-dasharray="7 5" {}
                text x="118" y="4" fill="#111827" { "forecast" }
                rect x="190" y="-6" width="22" height="12" fill="#93c5fd" {}
                text x="218" y="4" fill="#111827" { "80% interval" }
                rect x="318" y="-6" width="22" height="12" fill="#dbeafe" {}
                text x="346" y="4" fill="#111827" { "95% interval" }
            }
        }
    }
}

/// A coordinate with one decimal.
fn f1(v: f64) -> String {
    format!("{v:.1}")
}

const FONT: &str = "system-ui, -apple-system, Segoe UI, Roboto, sans-serif";

/// Horizontal bars per provider: last 30 days' actual cost against the next 30 days' forecast,
/// with the 80% interval as a whisker.
fn provider_chart(lines: &[ScopeLine], currency: &str) -> Markup {
    if lines.is_empty() {
        return html! {};
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
    html! {
        svg viewBox={"0 0 " (W) " " (h)} width="100%" role="img" aria-label="Cost by provider"
            xmlns="http://www.w3.org/2000/svg" font-family=(FONT) font-size="12" {
            g transform={"translate(" (label_w) ",12)"} {
                rect x="0" y="-7" width="14" height="10" fill="#9ca3af" {}
                text x="20" y="2" fill="#111827" { "last 30 days" }
                rect x="120" y="-7" width="14" height="10" fill="#1d4ed8" {}
                text x="140" y="2" fill="#111827" { "next 30 days (forecast, 80% whisker)" }
            }
            @for (i, l) in lines.iter().enumerate() {
                @let top = 28.0 + row * i as f64;
                text x=(label_w - 10.0) y=(f1(top + 19.0)) text-anchor="end" fill="#111827"
                    font-weight="600" { (l.key) }
                rect x=(label_w) y=(f1(top)) width=(f1(xs(l.last_30_days) - label_w)) height="14"
                    fill="#9ca3af" {}
                @if let Some(e) = l.next_30_days {
                    rect x=(label_w) y=(f1(top + 16.0)) width=(f1(xs(e.forecast) - label_w))
                        height="14" fill="#1d4ed8" {}
                    line x1=(f1(xs(e.lower_80))) x2=(f1(xs(e.upper_80))) y1=(f1(top + 23.0))
                        y2=(f1(top + 23.0)) stroke="#111827" {}
                }
                text x=(W - value_w) y=(f1(top + 19.0)) fill="#374151" {
                    (money(l.last_30_days, currency)) " → "
                    @match l.next_30_days {
                        Some(e) => (money(e.forecast, currency)),
                        None => "no forecast",
                    }
                }
            }
        }
    }
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

fn band_80(e: &Estimate, currency: &str) -> String {
    format!(
        "{} – {}",
        money(e.lower_80, currency),
        money(e.upper_80, currency)
    )
}

fn card(label: &str, value: &str, sub: &str) -> Markup {
    html! {
        div.card { div.label { (label) } div.value { (value) } div.sub { (sub) } }
    }
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
    let month = chrono::NaiveDate::parse_from_str(&r.period_start, "%Y-%m-%d")
        .map(|d| d.format("%B %Y").to_string())
        .unwrap_or_else(|_| r.period_start.clone());
    let no_forecast = || card_text("–", "no forecast");
    let (month_end, month_end_sub) = r.month_end.as_ref().map_or_else(no_forecast, |e| {
        card_text(&money(e.forecast, c), &format!("80%: {}", band_80(e, c)))
    });
    let (next_30, next_30_sub) = r.next_30_days.as_ref().map_or_else(no_forecast, |e| {
        card_text(&money(e.forecast, c), &format!("80%: {}", band_80(e, c)))
    });
    let fmt2 = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.2}"));
    let share = |v: Option<f64>| v.map_or("–".into(), |v| format!("{:.0}%", v * 100.0));
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="Content-Security-Policy" content=(PAGE_CSP);
                title { "opslake cost forecast · " (month) }
                style { (PreEscaped(STYLE)) }
            }
            body { main {
                header {
                    h1 { "Cost forecast · " (month) }
                    p {
                        "Generated " (r.generated_at) " (" (r.trigger) ") · actuals up to "
                        (r.as_of.as_deref().unwrap_or("–")) " · report " code { (r.report_id) }
                    }
                }
                div.cards {
                    (card("Spend this month", &money(r.spend.month_to_date, c), &format!(
                        "last 7 days {} ({} week on week)",
                        money(r.spend.last_7_days, c),
                        pct(r.spend.change_7_days_pct)
                    )))
                    (card("Month-end forecast", &month_end, &month_end_sub))
                    (card("Next 30 days", &next_30, &next_30_sub))
                    (card(
                        "Potential savings",
                        &format!("{}/mo", money(r.potential_monthly_savings, c)),
                        &format!("{} opportunities", r.opportunities.len()),
                    ))
                }
                section {
                    h2 { "Daily cost and forecast" }
                    (forecast_chart(&r.daily, c))
                    @if let Some(e) = &r.month_end {
                        p {
                            "Month end: " b { (money(e.forecast, c)) } " (" (range(e, c)) ")."
                            @if let Some(n) = &r.next_30_days {
                                " Next 30 days: " b { (money(n.forecast, c)) } " (" (range(n, c)) ")."
                            }
                        }
                    }
                    @if let Some(q) = &r.quality {
                        p.muted {
                            "Method: " b { (q.method) } ", chosen by backtest from " (q.origins)
                            " origins: MASE " (fmt2(q.mase))
                            " (below 1 beats the seasonal naive forecast), sMAPE "
                            (q.smape.map_or("–".into(), |v| format!("{v:.1}%")))
                            ", actuals inside the 80% / 95% intervals " (share(q.coverage_80))
                            " / " (share(q.coverage_95)) ". All methods' MASE: "
                            (q.methods.iter().map(|(m, v)| format!("{m} {}", fmt2(*v))).collect::<Vec<_>>().join(", "))
                            "."
                        }
                    }
                }
                @if !r.providers.is_empty() {
                    section { h2 { "By provider" } (provider_chart(&r.providers, c)) }
                }
                section {
                    h2 { "Biggest movers (last 7 days against the 7 before)" }
                    @if r.movers.is_empty() {
                        p.muted { "No change worth noting." }
                    } @else {
                        table {
                            tr { th { "scope" } th { "name" } th.num { "previous 7 days" }
                                 th.num { "last 7 days" } th.num { "change" } }
                            @for m in &r.movers {
                                tr {
                                    td { (m.scope) } td { (m.key) }
                                    td.num { (money(m.previous_7_days, c)) }
                                    td.num { (money(m.last_7_days, c)) }
                                    td.num.up[m.change > 0.0].down[m.change <= 0.0] {
                                        (money(m.change, c)) " (" (pct(m.change_pct)) ")"
                                    }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { "Cost spikes (last 14 days)" }
                    @if r.spikes.is_empty() {
                        p.muted { "No day cost far more than the 4 weeks before it." }
                    } @else {
                        table {
                            tr { th { "day" } th { "scope" } th { "name" } th.num { "cost" }
                                 th.num { "typical day" } }
                            @for s in &r.spikes {
                                tr {
                                    td { (s.date) } td { (s.scope) } td { (s.key) }
                                    td.num.up { (money(s.cost, c)) }
                                    td.num { (money(s.typical, c)) }
                                }
                            }
                        }
                    }
                }
                section {
                    h2 { "Savings opportunities · " (money(r.potential_monthly_savings, c)) "/month in all" }
                    @if r.opportunities.is_empty() {
                        p.muted { "None found: every resource with utilization data is in use and priced in line." }
                    } @else {
                        table {
                            tr { th { "kind" } th { "resource" } th.num { "monthly cost" }
                                 th.num { "saves / month" } th { "recommendation" } }
                            @for o in &r.opportunities {
                                tr {
                                    td { span class={"badge " (o.kind)} { (o.kind.replace('_', " ")) } }
                                    td { (o.resource_id) br; span.muted { (o.provider) } }
                                    td.num { (money(o.monthly_cost, &o.currency)) }
                                    td.num { b { (money(o.estimated_monthly_savings, &o.currency)) } }
                                    td { (o.recommendation) }
                                }
                            }
                        }
                    }
                }
                @if !r.services.is_empty() {
                    section {
                        h2 { "By service" }
                        table {
                            tr { th { "service" } th.num { "last 30 days" } th.num { "next 30 days" }
                                 th { "80% interval" } th { "method" } }
                            @for s in r.services.iter().take(15) {
                                tr {
                                    td { (s.key) }
                                    td.num { (money(s.last_30_days, c)) }
                                    @match &s.next_30_days {
                                        Some(e) => {
                                            td.num { (money(e.forecast, c)) }
                                            td { (band_80(e, c)) }
                                        }
                                        None => { td.num { "–" } td { "–" } }
                                    }
                                    td { (s.method.as_deref().unwrap_or("too short to forecast")) }
                                }
                            }
                        }
                    }
                }
                @if !r.not_forecast.is_empty() || !r.notes.is_empty() {
                    section {
                        h2 { "Notes" }
                        ul {
                            @for n in &r.notes { li { (n) } }
                            @if let Some(first) = r.not_forecast.first() {
                                li {
                                    (r.not_forecast.len())
                                    " series have too little history to forecast and say so instead of guessing ("
                                    (r.not_forecast.iter().take(8).map(|n| format!("{} {}", n.scope, n.key)).collect::<Vec<_>>().join(", "))
                                    @if r.not_forecast.len() > 8 { ", …" }
                                    "): " (first.reason) "."
                                }
                            }
                        }
                    }
                }
                footer {
                    "opslake · " (r.summary) " · the same report as JSON: "
                    code { "GET /api/v1/reports/" (r.report_id) }
                }
            } }
        }
    };
    page.into_string()
}

/// A card's value and line below it.
fn card_text(value: &str, sub: &str) -> (String, String) {
    (value.to_string(), sub.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A report in which every text a bill or the lake can set holds markup.
    fn hostile_report() -> ForecastReport {
        let x = "<img src=x onerror=alert(1)>\"'&<script>alert(2)</script>";
        let est = serde_json::json!({"forecast": 10.0, "lower_80": 8.0, "upper_80": 12.0,
            "lower_95": 7.0, "upper_95": 13.0});
        let line = serde_json::json!({"scope": x, "key": x, "last_30_days": 9.0, "last_7_days": 2.0,
            "previous_7_days": 1.0, "next_30_days": est, "method": x});
        let day = |d: &str, a: Option<f64>, f: Option<f64>| {
            serde_json::json!({"date": d, "actual": a,
            "forecast": f, "lower_80": f, "upper_80": f, "lower_95": f, "upper_95": f})
        };
        serde_json::from_value(serde_json::json!({
            "report_id": x, "kind": "forecast", "trigger": x, "generated_at": x, "currency": x,
            "as_of": x, "period_start": x, "period_end": x, "summary": x,
            "spend": {"month_to_date": 5.0, "month_days_complete": 3, "last_7_days": 2.0,
                "previous_7_days": 1.0, "change_7_days_pct": 100.0},
            "month_end": est, "next_30_days": est,
            "quality": {"method": x, "mase": 0.5, "smape": 3.0, "coverage_80": 0.8,
                "coverage_95": 0.95, "origins": 4, "methods": {x: 0.5}},
            "daily": [day(x, Some(1.0), None), day("2026-11-02", Some(2.0), None),
                day("2026-11-03", None, Some(3.0)), day("2026-11-04", None, Some(4.0))],
            "providers": [line], "services": [line],
            "movers": [{"scope": x, "key": x, "last_7_days": 2.0, "previous_7_days": 1.0,
                "change": 1.0, "change_pct": 100.0}],
            "spikes": [{"date": x, "scope": x, "key": x, "cost": 9.0, "typical": 1.0}],
            "opportunities": [{"provider": x, "resource_id": x, "kind": x, "monthly_cost": 9.0,
                "estimated_monthly_savings": 3.0, "recommendation": x, "service": x,
                "resource_type": x, "region": x, "utilization_mean": 0.1,
                "utilization_peak": 0.2, "evidence": x, "currency": x}],
            "potential_monthly_savings": 3.0,
            "not_forecast": [{"scope": x, "key": x, "reason": x}],
            "notes": [x],
        }))
        .unwrap()
    }

    #[test]
    fn no_value_of_a_report_can_add_markup() {
        let page = render(&hostile_report());
        for raw in ["<img", "<script", "onerror=alert(1)>", "'&<"] {
            assert!(!page.contains(raw), "{raw} appears unescaped");
        }
        // Every payload is there, escaped: in text and in attribute values alike.
        assert!(page.matches("&lt;img src=x onerror=alert(1)&gt;").count() >= 20);
        assert!(page.contains("class=\"badge &lt;img"));
        assert!(page.contains("Content-Security-Policy"));
        // The page's only elements are the template's.
        let tags: std::collections::BTreeSet<&str> = page
            .split('<')
            .skip(1)
            .filter_map(|t| t.split([' ', '>', '/']).next())
            .filter(|t| !t.is_empty())
            .collect();
        for t in &tags {
            assert!(
                [
                    "!DOCTYPE", "html", "head", "meta", "title", "style", "body", "main", "header",
                    "h1", "h2", "p", "code", "div", "section", "svg", "line", "text", "path",
                    "polyline", "g", "rect", "table", "tr", "th", "td", "b", "span", "br", "ul",
                    "li", "footer"
                ]
                .contains(t),
                "unexpected element <{t}>"
            );
        }
    }

    #[test]
    fn numbers_read_well() {
        assert_eq!(money(1_234_567.891, "USD"), "$1,234,568");
        assert_eq!(money(1234.5, "USD"), "$1,234.50");
        assert_eq!(money(-3.0, "USD"), "-$3.00");
        assert_eq!(money(12.0, "EUR"), "12.00 EUR");
        assert_eq!(money_short(2500.0, "USD"), "$2.5k");
        assert_eq!(money_short(200.0, "USD"), "$200");
        assert_eq!(nice_step(1234.0), 250.0);
    }
}
