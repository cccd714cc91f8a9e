//! The synthetic load: services with endpoints whose latencies are lognormal, a daily traffic
//! and latency cycle, deploys of new versions that change latency, error bursts, and a fleet
//! of cloud resources with hourly billing, trends, weekly cycles and utilization gauges, some
//! of them idle or oversized on purpose.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, LogNormal, Normal};
use serde_json::{json, Value};

use opslake_ingest::Topics;

use super::SyntheticOptions;

struct Endpoint {
    path: &'static str,
    method: &'static str,
    /// Median latency in ms at version 0.
    median_ms: f64,
    sigma: f64,
}

struct Service {
    name: &'static str,
    endpoints: Vec<Endpoint>,
    version: u32,
    /// Latency multiplier of the current version.
    speed: f64,
    hosts: u32,
}

struct Resource {
    id: String,
    provider: &'static str,
    service: &'static str,
    category: &'static str,
    resource_type: &'static str,
    region: &'static str,
    hourly_cost: f64,
    /// Relative growth per day.
    trend: f64,
    /// Average utilization (0..1); idle ones are near 0, oversized ones peak low.
    utilization: f64,
}

/// The synthetic event generator; deterministic for a seed and start time.
pub(crate) struct Generator {
    rng: StdRng,
    topics: Topics,
    services: Vec<Service>,
    fleet: Vec<Resource>,
    start_ms: Option<i64>,
    step_ms: f64,
    per_message: usize,
    only: Option<String>,
    end_ms: Option<i64>,
    n: u64,
    billed_hour: Option<i64>,
    pending: Vec<(String, String)>,
    /// Day (epoch days) from which cost trends compound.
    trend_origin_day: f64,
    incidents: bool,
    /// The minute whose resource gauges were queued.
    gauged_minute: Option<i64>,
}

const DAY_MS: f64 = 86_400_000.0;

impl Generator {
    pub fn new(opts: &SyntheticOptions, topics: &Topics) -> Self {
        let ep = |path, method, median_ms, sigma| Endpoint {
            path,
            method,
            median_ms,
            sigma,
        };
        let services = vec![
            Service {
                name: "checkout",
                endpoints: vec![
                    ep("/api/pay", "POST", 120.0, 0.45),
                    ep("/api/cart", "GET", 35.0, 0.35),
                ],
                version: 0,
                speed: 1.0,
                hosts: 3,
            },
            Service {
                name: "search",
                endpoints: vec![
                    ep("/api/search", "GET", 60.0, 0.6),
                    ep("/api/suggest", "GET", 12.0, 0.3),
                ],
                version: 0,
                speed: 1.0,
                hosts: 4,
            },
            Service {
                name: "catalog",
                endpoints: vec![
                    ep("/api/items", "GET", 25.0, 0.4),
                    ep("/api/items/{id}", "GET", 8.0, 0.3),
                ],
                version: 0,
                speed: 1.0,
                hosts: 2,
            },
            Service {
                name: "auth",
                endpoints: vec![
                    ep("/api/login", "POST", 80.0, 0.3),
                    ep("/api/token", "POST", 15.0, 0.25),
                ],
                version: 0,
                speed: 1.0,
                hosts: 2,
            },
            Service {
                name: "shipping",
                endpoints: vec![ep("/api/quote", "POST", 200.0, 0.5)],
                version: 0,
                speed: 1.0,
                hosts: 2,
            },
        ];
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let providers: [(&str, &[&str]); 4] = [
            ("aws", &["us-east-1", "eu-west-1"]),
            ("azure", &["westeurope", "eastus"]),
            ("gcp", &["us-central1", "europe-west1"]),
            ("on-prem", &["dc-1"]),
        ];
        let kinds: [(&str, &str, &str, f64); 6] = [
            ("compute", "Compute", "Virtual Machines", 0.40),
            ("storage", "Storage", "Object Storage", 0.08),
            ("database", "Databases", "Managed Database", 0.90),
            ("network", "Networking", "Load Balancer", 0.05),
            ("container", "Compute", "Kubernetes", 0.60),
            ("serverless", "Compute", "Functions", 0.02),
        ];
        let mut fleet = Vec::new();
        for (pi, (provider, regions)) in providers.iter().enumerate() {
            for (ki, (rtype, category, service, base)) in kinds.iter().enumerate() {
                if *provider == "on-prem" && !matches!(*rtype, "compute" | "storage") {
                    continue;
                }
                let region = regions[(pi + ki) % regions.len()];
                // aws compute costs more per unit than the others: a provider disparity.
                let premium = if *provider == "aws" && *rtype == "compute" {
                    1.8
                } else {
                    1.0
                };
                let i = fleet.len();
                let utilization = match i % 7 {
                    0 => 0.01, // idle
                    3 => 0.18, // underutilized
                    5 => 0.33, // oversized: busy enough, but never near half
                    _ => rng.random_range(0.5..0.85),
                };
                fleet.push(Resource {
                    id: format!("{provider}:{rtype}:{}", 1000 + i),
                    provider,
                    service,
                    category,
                    resource_type: rtype,
                    region,
                    hourly_cost: base * premium * rng.random_range(0.9..1.1),
                    trend: rng.random_range(-0.002..0.006),
                    utilization,
                });
            }
        }
        Self {
            rng,
            topics: topics.clone(),
            services,
            fleet,
            start_ms: opts.start_ms,
            step_ms: opts.step_ms,
            per_message: opts.per_message.max(1),
            only: opts.only.clone(),
            end_ms: opts.end_ms.filter(|_| opts.start_ms.is_some()),
            n: 0,
            billed_hour: None,
            pending: Vec::new(),
            trend_origin_day: (chrono::Utc::now().timestamp_millis() as f64 / DAY_MS).floor()
                - 60.0,
            incidents: opts.incidents,
            gauged_minute: None,
        }
    }

    fn now_ms(&self) -> i64 {
        match self.start_ms {
            Some(s) => s + (self.n as f64 * self.step_ms) as i64,
            None => chrono::Utc::now().timestamp_millis(),
        }
    }

    /// The next message, (topic, value); `None` once simulated time reaches the end.
    pub fn next_message(&mut self) -> Option<(String, String)> {
        loop {
            if let Some(m) = self.pending.pop() {
                return Some(m);
            }
            let t = self.now_ms();
            if self.end_ms.is_some_and(|end| t >= end) {
                return None;
            }
            self.n += 1;
            let hour = t.div_euclid(3_600_000);
            let bills = self.only.as_deref().is_none_or(|k| k == "billing");
            if self.billed_hour != Some(hour) {
                let first = self.billed_hour.is_none();
                self.billed_hour = Some(hour);
                if bills && (!first || self.start_ms.is_some()) {
                    self.queue_billing(hour - 1);
                }
            }
            let minute = t.div_euclid(60_000);
            if self.gauged_minute != Some(minute) {
                self.gauged_minute = Some(minute);
                // The full demo only: `--only` keeps to what it names, event for event.
                if self.only.is_none() {
                    self.queue_resources(minute * 60_000);
                }
            }
            match self.only.clone().as_deref() {
                None => return Some(self.telemetry(t, None)),
                Some("billing") => {}
                Some(kind) => return Some(self.telemetry(t, Some(kind))),
            }
        }
    }

    /// A metric, log or gauge message at `t`; `only` keeps to metrics (with gauges) or logs.
    fn telemetry(&mut self, t: i64, only: Option<&str>) -> (String, String) {
        let roll: f64 = match only {
            Some("metrics") => {
                let r: f64 = self.rng.random();
                if r < 0.93 {
                    r * 0.70 / 0.93
                } else {
                    0.96
                }
            }
            Some(_) => 0.80,
            None => self.rng.random(),
        };
        let (topic, events) = if roll < 0.70 {
            (
                self.topics.metrics.clone(),
                (0..self.per_message)
                    .map(|_| self.metric(t))
                    .collect::<Vec<_>>(),
            )
        } else if roll < 0.95 {
            (
                self.topics.logs.clone(),
                (0..self.per_message).map(|_| self.log(t)).collect(),
            )
        } else {
            (
                self.topics.metrics.clone(),
                (0..self.per_message).map(|_| self.gauge(t)).collect(),
            )
        };
        let value = if events.len() == 1 {
            events[0].to_string()
        } else {
            Value::Array(events).to_string()
        };
        (topic, value)
    }

    /// Daily cycle: 1.0 at 15:00 UTC, lower at night.
    fn daily(t: i64) -> f64 {
        let phase = (t as f64 % DAY_MS) / DAY_MS;
        1.0 + 0.35 * (2.0 * std::f64::consts::PI * (phase - 0.375)).cos()
    }

    fn maybe_deploy(&mut self, s: usize) {
        // About one deploy per 20k events per service; every third deploy is a regression.
        if self.rng.random::<f64>() < 1.0 / 20_000.0 {
            let svc = &mut self.services[s];
            svc.version += 1;
            let speed = if svc.version.is_multiple_of(3) {
                1.35
            } else {
                self.rng.random_range(0.9..1.05)
            };
            if self.incidents {
                svc.speed = speed;
            }
        }
    }

    fn in_error_burst(&self, t: i64, service: usize) -> bool {
        if !self.incidents {
            return false;
        }
        // A 3-minute burst every ~2 hours, staggered per service.
        let cycle = 7_200_000i64;
        let offset = (service as i64 * 1_733_000) % cycle;
        (t + offset).rem_euclid(cycle) < 180_000
    }

    fn metric(&mut self, t: i64) -> Value {
        let s = self.rng.random_range(0..self.services.len());
        self.maybe_deploy(s);
        let e = self.rng.random_range(0..self.services[s].endpoints.len());
        let svc = &self.services[s];
        let ep = &svc.endpoints[e];
        let median = ep.median_ms * svc.speed * (0.8 + 0.2 * Self::daily(t));
        let latency =
            LogNormal::new(median.ln(), ep.sigma).map_or(median, |d| d.sample(&mut self.rng));
        let error_p = if self.in_error_burst(t, s) {
            0.25
        } else {
            0.004
        };
        let status = if self.rng.random::<f64>() < error_p {
            "500"
        } else {
            "200"
        };
        json!({
            "timestamp": t,
            "service": svc.name,
            "name": "http.server.duration",
            "value": (latency * 1000.0).round() / 1000.0,
            "unit": "ms",
            "kind": "sample",
            "host": format!("{}-{}", svc.name, self.rng.random_range(1..=svc.hosts)),
            "version": format!("1.{}.0", svc.version),
            "labels": {"endpoint": ep.path, "method": ep.method, "status": status}
        })
    }

    fn log(&mut self, t: i64) -> Value {
        let s = self.rng.random_range(0..self.services.len());
        let svc = &self.services[s];
        let ep = &svc.endpoints[self.rng.random_range(0..svc.endpoints.len())];
        let error_p = if self.in_error_burst(t, s) { 0.3 } else { 0.01 };
        let r: f64 = self.rng.random();
        let (level, message, status) = if r < error_p {
            (
                "error",
                format!("{} {} failed: upstream timeout", ep.method, ep.path),
                502,
            )
        } else if r < error_p + 0.04 {
            (
                "warn",
                format!("{} {} slow response", ep.method, ep.path),
                200,
            )
        } else {
            ("info", format!("{} {} ok", ep.method, ep.path), 200)
        };
        let duration = LogNormal::new((ep.median_ms * svc.speed).ln(), ep.sigma)
            .map_or(ep.median_ms, |d| d.sample(&mut self.rng));
        // Every 5th log uses an RFC 3339 timestamp, the rest epoch milliseconds.
        let ts = if self.n.is_multiple_of(5) {
            Value::String(
                chrono::DateTime::from_timestamp_millis(t)
                    .unwrap_or_default()
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            )
        } else {
            json!(t)
        };
        json!({
            "timestamp": ts,
            "service": svc.name,
            "level": level,
            "message": message,
            "host": format!("{}-{}", svc.name, self.rng.random_range(1..=svc.hosts)),
            "version": format!("1.{}.0", svc.version),
            "trace_id": format!("{:016x}", self.rng.random::<u64>()),
            "duration_ms": (duration * 10.0).round() / 10.0,
            "status_code": status,
            "attributes": {"endpoint": ep.path, "region": "eu-west-1"}
        })
    }

    fn gauge(&mut self, t: i64) -> Value {
        let i = self.rng.random_range(0..self.fleet.len());
        let r = &self.fleet[i];
        // An idle machine hums at about 1%: its noise is small too.
        let sd = if r.utilization > 0.05 { 0.04 } else { 0.002 };
        let noise = Normal::new(0.0, sd).map_or(0.0, |d| d.sample(&mut self.rng));
        let cycle = if r.utilization > 0.05 {
            0.15 * (Self::daily(t) - 1.0)
        } else {
            0.0
        };
        let u = (r.utilization + cycle + noise).clamp(0.0, 1.0);
        json!({
            "timestamp": t,
            "service": r.service,
            "name": "cpu.utilization",
            "value": (u * 1000.0).round() / 10.0,
            "unit": "percent",
            "kind": "gauge",
            "host": r.id,
            "labels": {"resource_id": r.id, "provider": r.provider, "region": r.region}
        })
    }

    fn queue_billing(&mut self, hour: i64) {
        let start = hour * 3_600_000;
        let day = start as f64 / DAY_MS;
        let weekday = (day.floor() as i64 + 4).rem_euclid(7); // 0 = Sunday
        let weekly = if weekday == 0 || weekday == 6 {
            0.75
        } else {
            1.0
        };
        let mut out = Vec::with_capacity(self.fleet.len());
        for r in &self.fleet {
            // Growth compounds from 60 days before the generator started (where backfills
            // usually begin), within half a year either way, so costs stay plausible for any
            // simulated date and a backfill joins the live traffic that follows it.
            let grow = (1.0 + r.trend).powf((day - self.trend_origin_day).clamp(-180.0, 180.0));
            let noise = 1.0 + self.rng.random_range(-0.05..0.05);
            let cost = r.hourly_cost * grow * weekly * noise;
            let spread = if r.utilization > 0.05 { 0.03 } else { 0.003 };
            let u = (r.utilization + self.rng.random_range(-spread..spread)).clamp(0.0, 1.0);
            let event = json!({
                "charge_period_start": chrono::DateTime::from_timestamp_millis(start).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "charge_period_end": chrono::DateTime::from_timestamp_millis(start + 3_600_000).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                "provider": r.provider,
                "service": r.service,
                "service_category": r.category,
                "resource_id": r.id,
                "resource_type": r.resource_type,
                "region": r.region,
                "usage_quantity": 1.0,
                "usage_unit": "Hours",
                "cost": format!("{cost:.6}"),
                "currency": "USD",
                "charge_category": "Usage",
                "utilization": (u * 1000.0).round() / 1000.0,
                "tags": {"team": r.service.to_lowercase().replace(' ', "-"), "env": "prod"}
            });
            out.push((self.topics.billing.clone(), event.to_string()));
        }
        self.pending.extend(out);
    }

    /// Each host's resource gauges of the minute starting at `t` (see [`super::resources`]).
    fn queue_resources(&mut self, t: i64) {
        let leak_origin_ms = ((self.trend_origin_day + 58.5) * DAY_MS) as i64;
        for svc in &self.services {
            for host in 1..=svc.hosts {
                let noise: f64 = self.rng.random_range(-1.0..1.0);
                let version = format!("1.{}.0", svc.version);
                for event in super::resources::host_gauges(
                    svc.name,
                    host,
                    &version,
                    t,
                    leak_origin_ms,
                    noise,
                ) {
                    self.pending
                        .push((self.topics.metrics.clone(), event.to_string()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opslake_schemas::{decode_message, EventKind};

    #[test]
    fn every_generated_event_is_accepted() {
        let topics = Topics::default();
        let opts = SyntheticOptions {
            seed: 7,
            start_ms: Some(1_795_341_600_000),
            step_ms: 500.0,
            per_message: 3,
            only: None,
            end_ms: None,
            incidents: true,
        };
        let mut g = Generator::new(&opts, &topics);
        let mut seen = std::collections::HashSet::new();
        for _ in 0..20_000 {
            let (topic, value) = g.next_message().unwrap();
            let kind = match topic.as_str() {
                "telemetry.metrics" => EventKind::Metric,
                "telemetry.logs" => EventKind::Log,
                _ => EventKind::Billing,
            };
            seen.insert(kind);
            let d = decode_message(kind, value.as_bytes());
            assert!(d.refused.is_empty(), "{value}: {:?}", d.refused);
        }
        assert_eq!(seen.len(), 3);
    }

    #[test]
    fn a_billing_backfill_covers_its_hours_and_stops_at_the_end() {
        let start = 1_795_341_600_000; // an hour boundary
        let opts = SyntheticOptions {
            seed: 1,
            start_ms: Some(start),
            step_ms: 3_600_000.0,
            per_message: 1,
            only: Some("billing".into()),
            end_ms: Some(start + 48 * 3_600_000),
            incidents: true,
        };
        let mut g = Generator::new(&opts, &Topics::default());
        let resources = g.fleet.len();
        assert_eq!(resources, 20, "3 clouds x 6 kinds + 2 on-prem");
        let mut per_hour = std::collections::BTreeMap::<String, usize>::new();
        while let Some((topic, value)) = g.next_message() {
            assert_eq!(topic, "telemetry.billing");
            let v: Value = serde_json::from_str(&value).unwrap();
            *per_hour
                .entry(v["charge_period_start"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        // Every hour before the end is billed once for each resource, and nothing after it.
        assert_eq!(per_hour.len(), 48);
        assert!(per_hour.values().all(|&n| n == resources), "{per_hour:?}");
    }
}
