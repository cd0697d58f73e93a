//! Prometheus metrics served at `/metrics`.

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};
use std::time::Duration;

/// The server's metrics.
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    authz_cached: IntGauge,
    cached: IntGaugeVec,
    logins: IntCounterVec,
    signups: IntCounterVec,
    signup_pool_available: IntGauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new_custom(Some("crm".into()), None).unwrap_or_default();
        let requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by method, route and status",
            ),
            &["method", "route", "status"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let latency = HistogramVec::new(
            HistogramOpts::new("http_request_duration_seconds", "HTTP request latency").buckets(
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
                ],
            ),
            &["method", "route"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let authz_cached = IntGauge::new(
            "authz_cached_tenants",
            "tenants whose casbin enforcer is cached",
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let cached = IntGaugeVec::new(
            Opts::new(
                "cache_tenants",
                "tenants held by each per-tenant cache (authz, schemas, registry)",
            ),
            &["cache"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let logins = IntCounterVec::new(
            Opts::new("logins_total", "login attempts by outcome"),
            &["outcome"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let signups = IntCounterVec::new(
            Opts::new("signups_total", "tenant sign-ups by outcome"),
            &["outcome"],
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        let signup_pool_available = IntGauge::new(
            "signup_pool_available",
            "pooled tenant schemas ready for sign-up, as this server last counted them",
        )
        .unwrap_or_else(|_| unreachable!("static metric definition"));
        for c in [
            Box::new(requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(latency.clone()),
            Box::new(authz_cached.clone()),
            Box::new(cached.clone()),
            Box::new(logins.clone()),
            Box::new(signups.clone()),
            Box::new(signup_pool_available.clone()),
        ] {
            let _ = registry.register(c);
        }
        Self {
            registry,
            requests,
            latency,
            authz_cached,
            cached,
            logins,
            signups,
            signup_pool_available,
        }
    }

    pub fn observe_request(&self, method: &str, path: &str, status: u16, elapsed: Duration) {
        let route = route_label(path);
        self.requests
            .with_label_values(&[method, &route, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[method, &route])
            .observe(elapsed.as_secs_f64());
    }

    pub fn login(&self, outcome: &str) {
        self.logins.with_label_values(&[outcome]).inc();
    }

    pub fn signup(&self, outcome: &str) {
        self.signups.with_label_values(&[outcome]).inc();
    }

    pub fn set_signup_pool_available(&self, n: i64) {
        self.signup_pool_available.set(n);
    }

    pub fn set_authz_cached(&self, n: usize) {
        self.authz_cached.set(n as i64);
        self.set_cached("authz", n);
    }

    /// How many tenants the named per-tenant cache holds.
    pub fn set_cached(&self, cache: &str, n: usize) {
        self.cached.with_label_values(&[cache]).set(n as i64);
    }

    pub fn render(&self) -> Vec<u8> {
        let mut families = self.registry.gather();
        families.extend(mail_families());
        families.extend(plugin_families());
        let mut out = Vec::new();
        let _ = TextEncoder::new().encode(&families, &mut out);
        out
    }
}

/// The mail policy's counters (`crm_core::mail::stats`, process-wide): messages enqueued,
/// refused by reason, and quota refusals by tenant slug (only tenants that hit their quota).
fn mail_families() -> Vec<prometheus::proto::MetricFamily> {
    let stats = crm_core::mail::stats::snapshot();
    let counter = |name: &str, help: &str, labels: &[&str]| {
        IntCounterVec::new(Opts::new(name, help).namespace("crm"), labels)
            .unwrap_or_else(|_| unreachable!("static metric definition"))
    };
    let enqueued = counter("mail_enqueued_total", "mail messages enqueued", &[]);
    enqueued
        .with_label_values::<&str>(&[])
        .inc_by(stats.enqueued);
    let refused = counter(
        "mail_refused_total",
        "mail refused by the mail policy, by reason (unverified_tenant, quota_exceeded, smtp_host)",
        &["reason"],
    );
    for reason in ["unverified_tenant", "quota_exceeded", "smtp_host"] {
        refused.with_label_values(&[reason]);
    }
    for (reason, n) in &stats.refused {
        refused.with_label_values(&[reason]).inc_by(*n);
    }
    let by_tenant = counter(
        "mail_quota_refused_total",
        "mail refused by the quota, by tenant (only tenants that hit it)",
        &["tenant"],
    );
    for (tenant, n) in &stats.quota_refused_by_tenant {
        by_tenant.with_label_values(&[tenant]).inc_by(*n);
    }
    use prometheus::core::Collector;
    [enqueued.collect(), refused.collect(), by_tenant.collect()]
        .into_iter()
        .flatten()
        .filter(|f| !f.get_metric().is_empty())
        .collect()
}

/// The plugin host's counters (`crm_plugins::stats`, process-wide): calls by trigger and
/// outcome, fuel and time, and the same per install for the most recently active installs.
fn plugin_families() -> Vec<prometheus::proto::MetricFamily> {
    let stats = crm_plugins::stats::snapshot();
    let counter = |name: &str, help: &str, labels: &[&str]| {
        IntCounterVec::new(Opts::new(name, help).namespace("crm"), labels)
            .unwrap_or_else(|_| unreachable!("static metric definition"))
    };
    let calls = counter(
        "plugin_calls_total",
        "plugin calls, by trigger (event, rule, request) and outcome",
        &["trigger", "outcome"],
    );
    for ((trigger, outcome), n) in &stats.calls {
        calls.with_label_values(&[trigger, outcome]).inc_by(*n);
    }
    let fuel = counter("plugin_fuel_total", "fuel plugins used", &[]);
    fuel.with_label_values::<&str>(&[]).inc_by(stats.fuel);
    let micros = counter(
        "plugin_call_microseconds_total",
        "wall time of plugin calls, microseconds",
        &[],
    );
    micros.with_label_values::<&str>(&[]).inc_by(stats.micros);
    let install_calls = counter(
        "plugin_install_calls_total",
        "calls per plugin install (recently active installs)",
        &["install"],
    );
    let install_failures = counter(
        "plugin_install_failures_total",
        "failed calls per plugin install (recently active installs)",
        &["install"],
    );
    let install_fuel = counter(
        "plugin_install_fuel_total",
        "fuel per plugin install (recently active installs)",
        &["install"],
    );
    let install_micros = counter(
        "plugin_install_microseconds_total",
        "wall time per plugin install, microseconds (recently active installs)",
        &["install"],
    );
    for (install, c) in &stats.installs {
        let label = install.to_string();
        install_calls.with_label_values(&[&label]).inc_by(c.calls);
        install_failures
            .with_label_values(&[&label])
            .inc_by(c.failures);
        install_fuel.with_label_values(&[&label]).inc_by(c.fuel);
        install_micros.with_label_values(&[&label]).inc_by(c.micros);
    }
    use prometheus::core::Collector;
    [
        calls.collect(),
        fuel.collect(),
        micros.collect(),
        install_calls.collect(),
        install_failures.collect(),
        install_fuel.collect(),
        install_micros.collect(),
    ]
    .into_iter()
    .flatten()
    .filter(|f| !f.get_metric().is_empty())
    .collect()
}

/// Collapses ids and names in a path so the route label has bounded cardinality.
fn route_label(path: &str) -> String {
    if !path.starts_with("/api/") {
        return match path {
            "/healthz" | "/readyz" | "/metrics" => path.to_owned(),
            _ => "other".to_owned(),
        };
    }
    if path.starts_with("/api/docs") {
        return "/api/docs".to_owned();
    }
    let segments: Vec<&str> = path.split('/').collect();
    if segments.len() > 8 {
        return "other".to_owned();
    }
    let mut out = Vec::with_capacity(segments.len());
    let mut previous = "";
    for s in segments {
        let keyed = uuid::Uuid::try_parse(s).is_ok()
            || s.chars().all(|c| c.is_ascii_digit()) && !s.is_empty();
        if keyed {
            out.push(":id");
        } else if matches!(previous, "roles" | "tags" | "fields") {
            out.push(":name");
        } else {
            out.push(s);
        }
        previous = s;
    }
    out.join("/")
}

#[cfg(test)]
mod tests {
    use super::route_label;

    #[test]
    fn routes_are_collapsed() {
        assert_eq!(
            route_label("/api/v1/users/0190d6a1-0000-7000-8000-000000000000/password"),
            "/api/v1/users/:id/password"
        );
        assert_eq!(route_label("/api/v1/roles/sales"), "/api/v1/roles/:name");
        assert_eq!(
            route_label("/api/v1/customers/0190d6a1-0000-7000-8000-000000000000/tags/VIP"),
            "/api/v1/customers/:id/tags/:name"
        );
        assert_eq!(
            route_label("/api/v1/objects/customers/fields/tier"),
            "/api/v1/objects/customers/fields/:name"
        );
        assert_eq!(route_label("/wp-admin.php"), "other");
        assert_eq!(route_label("/api/v1/auth/login"), "/api/v1/auth/login");
    }
}
