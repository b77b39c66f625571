//! JSON log lines: one object a line with the time, level, target and message, the
//! event's fields, the fields of every span in scope (outermost first, inner ones win,
//! so a job's lines carry `job_id`), the innermost span's name, and the OpenTelemetry
//! `trace_id` and `span_id` of that span.

use std::fmt;

use serde_json::{Map, Value};
use std::sync::OnceLock;
use tracing::{field::Field, Event, Subscriber};

use opentelemetry::trace::{SpanId, TraceContextExt, TraceId};
use tracing::{dispatcher::WeakDispatch, span, Dispatch};
use tracing_subscriber::{
    fmt::{format::Writer, FmtContext, FormatEvent, FormatFields, FormattedFields},
    layer::Context,
    registry::LookupSpan,
    Layer,
};

/// The OpenTelemetry ids of a span, kept in its extensions for the log lines.
#[derive(Clone, Copy, Debug)]
struct SpanIds {
    trace_id: TraceId,
    span_id: SpanId,
}

/// Records each span's OpenTelemetry ids when it is first entered, for [`JsonLines`].
/// Must sit above the OpenTelemetry layer.
#[derive(Default)]
pub struct TraceIds {
    dispatch: OnceLock<WeakDispatch>,
}

impl<S> Layer<S> for TraceIds
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_register_dispatch(&self, dispatch: &Dispatch) {
        let _ = self.dispatch.set(dispatch.downgrade());
    }

    fn on_enter(&self, id: &span::Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if span.extensions().get::<SpanIds>().is_some() {
            return;
        }
        let Some(dispatch) = self.dispatch.get().and_then(WeakDispatch::upgrade) else {
            return;
        };
        let Some(context) = tracing_opentelemetry::get_otel_context(id, &dispatch) else {
            return;
        };
        let span_context = context.span().span_context().clone();
        if span_context.is_valid() {
            span.extensions_mut().insert(SpanIds {
                trace_id: span_context.trace_id(),
                span_id: span_context.span_id(),
            });
        }
    }
}

/// The event formatter of `--log-format json`. Span fields must be recorded as JSON
/// (`JsonFields`) for them to be merged.
pub struct JsonLines;

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), meta.level().as_str().into());
        line.insert("target".into(), meta.target().into());
        let mut innermost = None;
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                if let Some(fields) = extensions.get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(fields)) = serde_json::from_str(fields) {
                        line.extend(fields);
                    }
                }
                innermost = Some((span.name(), extensions.get::<SpanIds>().copied()));
            }
        }
        event.record(&mut Fields(&mut line));
        if let Some((name, ids)) = innermost {
            line.insert("span".into(), name.into());
            if let Some(ids) = ids {
                line.insert("trace_id".into(), ids.trace_id.to_string().into());
                line.insert("span_id".into(), ids.span_id.to_string().into());
            }
        }
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Records an event's fields into the line, `message` included.
struct Fields<'a>(&'a mut Map<String, Value>);

impl tracing::field::Visit for Fields<'_> {
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::{fmt, layer::SubscriberExt};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_carry_span_fields_and_trace_ids() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let provider = crate::otel::local_provider();
        let subscriber = tracing_subscriber::registry()
            .with(crate::otel::tracing_layer(&provider))
            .with(TraceIds::default())
            .with(
                fmt::layer()
                    .fmt_fields(fmt::format::JsonFields::new())
                    .event_format(JsonLines)
                    .with_writer(move || writer.clone()),
            );
        tracing::subscriber::with_default(subscriber, || {
            let job = tracing::info_span!("task", job_id = "j-1", attempt = 2);
            let _job = job.enter();
            let object = tracing::info_span!("copy_object", key = "a/b");
            let _object = object.enter();
            tracing::info!(bytes = 7_u64, "copied");
        });
        let text = String::from_utf8(buffer.0.lock().map(|b| b.clone()).unwrap_or_default())
            .unwrap_or_default();
        let line: Value =
            serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"));
        assert_eq!(line["message"], "copied");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["job_id"], "j-1");
        assert_eq!(line["attempt"], 2);
        assert_eq!(line["key"], "a/b");
        assert_eq!(line["bytes"], 7);
        assert_eq!(line["span"], "copy_object");
        assert_eq!(line["trace_id"].as_str().map(str::len), Some(32), "{line}");
        assert_eq!(line["span_id"].as_str().map(str::len), Some(16), "{line}");
    }
}
