//! Resource gauges of the synthetic load, one per host and minute: `process.memory.usage`
//! (bytes) with a garbage collector's sawtooth and a daily shape, and `disk.utilization` (a
//! ratio, limit 1.0). From the leak origin (a day and a half before the generator's day, so a
//! three-day backfill holds it): `shipping-1` leaks steadily, `auth`'s hosts leak and are
//! restarted every 20 hours, `search` fills a cache that levels off (not a leak), and
//! `search-1`'s disk fills towards its limit.

use serde_json::{json, Value};

const HOUR_MS: f64 = 3_600_000.0;
const DAY_MS: f64 = 86_400_000.0;
const MB: f64 = 1_048_576.0;

/// The gauges of `service`'s host number `host` at minute `t` (epoch ms); `noise` in -1..1.
pub(crate) fn host_gauges(
    service: &str,
    host: u32,
    version: &str,
    t: i64,
    leak_origin_ms: i64,
    noise: f64,
) -> Vec<Value> {
    let base = match service {
        "checkout" => 512.0,
        "search" => 768.0,
        "catalog" => 384.0,
        "auth" => 256.0,
        _ => 320.0,
    } * MB;
    let minute = t.div_euclid(60_000);
    // A collection every 7 minutes frees what the last 7 allocated.
    let sawtooth = 0.08 * ((minute + i64::from(host)) % 7) as f64 / 7.0;
    let phase = (t as f64 % DAY_MS) / DAY_MS;
    let daily = 0.06 * (2.0 * std::f64::consts::PI * (phase - 0.375)).cos();
    let since_h = (t - leak_origin_ms) as f64 / HOUR_MS;
    let trend = match (service, host) {
        ("shipping", 1) if since_h > 0.0 => 0.015 * since_h,
        ("auth", _) if since_h > 0.0 => 0.03 * ((since_h + 5.0 * f64::from(host)) % 20.0),
        ("search", _) => 0.25 * (1.0 - (-(since_h + 24.0).max(0.0) / 6.0).exp()),
        _ => 0.0,
    };
    let memory = base * (1.0 + sawtooth + daily + trend + 0.01 * noise);
    let disk = match (service, host) {
        ("search", 1) => 0.55 + 0.004 * (since_h + 48.0).max(0.0),
        _ => 0.30 + 0.02 * f64::from(host) + 0.002 * noise,
    }
    .clamp(0.0, 1.0);
    let host = format!("{service}-{host}");
    let gauge = |name: &str, value: f64, unit: &str| {
        json!({
            "timestamp": t,
            "service": service,
            "name": name,
            "value": value.round(),
            "unit": unit,
            "kind": "gauge",
            "host": host,
            "version": version,
        })
    };
    let mut disk_gauge = gauge("disk.utilization", 0.0, "1");
    disk_gauge["value"] = json!((disk * 10_000.0).round() / 10_000.0);
    vec![gauge("process.memory.usage", memory, "By"), disk_gauge]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(service: &str, host: u32, t: i64, origin: i64) -> f64 {
        host_gauges(service, host, "1.0.0", t, origin, 0.0)[0]["value"]
            .as_f64()
            .unwrap()
    }

    #[test]
    fn the_leaking_host_grows_and_the_others_come_back() {
        let origin = 1_795_000_000_000;
        let day = DAY_MS as i64;
        let at = |d: i64| origin + d * day;
        assert!(memory("shipping", 1, at(2), origin) > 1.5 * memory("shipping", 1, at(0), origin));
        let healthy = (
            memory("checkout", 1, at(0), origin),
            memory("checkout", 1, at(2), origin),
        );
        assert!((healthy.1 / healthy.0 - 1.0).abs() < 0.2, "{healthy:?}");
        let disk = host_gauges("search", 1, "1.0.0", at(1), origin, 0.0)[1]["value"]
            .as_f64()
            .unwrap();
        assert!(disk > 0.6 && disk <= 1.0, "{disk}");
    }
}
