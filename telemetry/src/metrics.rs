//! Prometheus metrics in the process-wide registry, rendered in the classic text
//! format (0.0.4) that Prometheus scrapes and `promtool check metrics` judges. The
//! constructors register as they build: a name registered twice is a programming
//! error, caught by the first test that touches the metric.

use std::{future::Future, sync::Once};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{body::Incoming, service::service_fn, Request, Response, StatusCode};
use prometheus::{Encoder, HistogramOpts, Opts, TextEncoder};
pub use prometheus::{
    Gauge, GaugeVec, Histogram, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
};
use tokio::net::TcpListener;

/// The content type of the exposition.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Seconds, for latencies from a millisecond to a minute (RPCs).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Seconds, for work from ten milliseconds to an hour (tasks).
pub const DURATION_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// Bytes, from 1 KiB to 16 GiB by fours (object sizes).
pub const SIZE_BUCKETS: &[f64] = &[
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
    1_073_741_824.0,
    4_294_967_296.0,
    17_179_869_184.0,
];

fn register<C: prometheus::core::Collector + Clone + 'static>(collector: C) -> C {
    prometheus::register(Box::new(collector.clone()))
        .unwrap_or_else(|e| panic!("registering a metric: {e}"));
    collector
}

pub fn int_counter(name: &str, help: &str) -> IntCounter {
    register(IntCounter::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")))
}

pub fn int_counter_vec(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(
        IntCounterVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub fn int_gauge(name: &str, help: &str) -> IntGauge {
    register(IntGauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")))
}

pub fn int_gauge_vec(name: &str, help: &str, labels: &[&str]) -> IntGaugeVec {
    register(
        IntGaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub fn gauge(name: &str, help: &str) -> Gauge {
    register(Gauge::new(name, help).unwrap_or_else(|e| panic!("metric {name}: {e}")))
}

pub fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> GaugeVec {
    register(
        GaugeVec::new(Opts::new(name, help), labels)
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub fn histogram(name: &str, help: &str, buckets: &[f64]) -> Histogram {
    register(
        Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
            .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

pub fn histogram_vec(name: &str, help: &str, labels: &[&str], buckets: &[f64]) -> HistogramVec {
    register(
        HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets.to_vec()),
            labels,
        )
        .unwrap_or_else(|e| panic!("metric {name}: {e}")),
    )
}

/// Adds the standard `process_*` metrics (resident memory, CPU seconds, open file
/// descriptors, start time), once.
pub fn register_process_metrics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let collector = prometheus::process_collector::ProcessCollector::for_self();
        if let Err(e) = prometheus::register(Box::new(collector)) {
            tracing::warn!(error = %e, "process metrics unavailable");
        }
    });
}

/// The exposition of every registered metric.
pub fn render() -> String {
    let families = prometheus::gather();
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&families, &mut out) {
        tracing::warn!(error = %e, "encoding metrics");
    }
    String::from_utf8(out).unwrap_or_default()
}

/// Answers `GET /metrics` with [`render`] on `listener` until `shutdown` resolves; any
/// other path is 404. For processes without an HTTP server of their own (the agent).
pub async fn serve(listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting a metrics connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => return,
        };
        tokio::spawn(async move {
            let connection = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service_fn(answer));
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

async fn answer(
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, std::convert::Infallible> {
    let response = if request.uri().path() == "/metrics" && request.method() == hyper::Method::GET {
        Response::builder()
            .header(hyper::header::CONTENT_TYPE, CONTENT_TYPE)
            .body(Full::new(Bytes::from(render())))
    } else {
        Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Full::new(Bytes::from_static(
                b"not found: metrics are at /metrics\n",
            )))
    };
    Ok(response.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn serves_the_exposition_at_metrics_only() {
        let counter = int_counter("ferry_test_things_total", "Things counted by a test.");
        counter.inc_by(3);
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let addr = listener.local_addr().unwrap_or_else(|e| panic!("{e}"));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, async {
            let _ = stopped.await;
        }));
        let get = |path: &'static str| async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
            stream
                .write_all(request.as_bytes())
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            let mut answer = String::new();
            stream
                .read_to_string(&mut answer)
                .await
                .unwrap_or_else(|e| panic!("{e}"));
            answer
        };
        let metrics = get("/metrics").await;
        assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
        assert!(
            metrics.contains("content-type: text/plain; version=0.0.4"),
            "{metrics}"
        );
        assert!(
            metrics.contains("# TYPE ferry_test_things_total counter"),
            "{metrics}"
        );
        assert!(
            metrics.contains("\nferry_test_things_total 3\n"),
            "{metrics}"
        );
        assert!(get("/other").await.starts_with("HTTP/1.1 404"));
        let _ = stop.send(());
        server.await.unwrap_or_else(|e| panic!("{e}"));
    }
}
