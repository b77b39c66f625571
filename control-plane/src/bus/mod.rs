//! The NATS JetStream port: the streams Ferry uses, publishing with deduplication and
//! publish acks, and the subjects of jobs and progress.
//!
//! The SQL database decides; the bus only delivers. Everything published here was first
//! committed to the outbox (see `relay`).

pub mod aggregator;
pub mod messages;
pub mod progress;
pub mod reconciler;
pub mod relay;

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use crate::{
    domain::ids::SiteId,
    error::{Error, Result},
};

pub use ferry_proto::bus::{EVENTS_STREAM, JOBS_STREAM, PROGRESS_STREAM};
/// How long JetStream remembers a `Nats-Msg-Id` to drop a repeat publish.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(120);

pub fn jobs_subject(site: SiteId) -> String {
    ferry_proto::bus::jobs_subject(&site.to_string())
}

pub fn access_subject(dataset: crate::domain::ids::DatasetId) -> String {
    format!("ferry.events.access.{dataset}")
}

/// Where the agents of a site answer dry runs (NATS request and reply, no JetStream).
pub fn dry_run_subject(site: SiteId) -> String {
    ferry_proto::bus::dry_run_subject(&site.to_string())
}

/// The user and password the control plane presents to nats-server, when it asks for
/// them (see docs/operations.md, "NATS authentication").
#[derive(Clone)]
pub struct Credentials {
    pub user: String,
    pub password: secrecy::SecretString,
}

/// A connection to NATS with JetStream. Cheap to clone.
#[derive(Clone)]
pub struct Bus {
    client: async_nats::Client,
    js: jetstream::Context,
}

/// Why a request found no answer.
#[derive(Debug)]
pub enum NoAnswer {
    /// Nobody listens on the subject.
    NoResponders,
    /// Nobody answered in time.
    TimedOut,
    /// NATS is unreachable.
    Unavailable(String),
}

impl Bus {
    /// Connects in the background: the control plane serves its catalogue while NATS is
    /// unreachable, and the relay publishes once it is back.
    pub async fn connect(url: &str, credentials: Option<Credentials>) -> Result<Self> {
        let mut options = async_nats::ConnectOptions::new();
        if let Some(Credentials { user, password }) = credentials {
            use secrecy::ExposeSecret;
            options = options.user_and_password(user, password.expose_secret().to_owned());
        }
        let client = options
            .name("ferry-control-plane")
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(5))
            .event_callback(|event| async move {
                tracing::info!(%event, "nats connection event");
            })
            .connect(url)
            .await
            .map_err(|e| Error::Unavailable(format!("connecting to NATS at {url}: {e}")))?;
        Ok(Bus {
            js: jetstream::new(client.clone()),
            client,
        })
    }

    /// Sends a request to whoever listens on `subject` and waits up to `timeout` for
    /// the answer's payload.
    pub async fn request(
        &self,
        subject: String,
        payload: Vec<u8>,
        timeout: Duration,
    ) -> std::result::Result<Bytes, NoAnswer> {
        use async_nats::RequestErrorKind;
        let request = async_nats::Request::new()
            .payload(Bytes::from(payload))
            .timeout(Some(timeout));
        match self.client.send_request(subject, request).await {
            Ok(message) => Ok(message.payload),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => NoAnswer::NoResponders,
                RequestErrorKind::TimedOut => NoAnswer::TimedOut,
                _ => NoAnswer::Unavailable(e.to_string()),
            }),
        }
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.js
    }

    /// Creates the streams if they are missing.
    pub async fn ensure_streams(&self) -> Result<()> {
        let jobs = stream::Config {
            name: JOBS_STREAM.into(),
            subjects: vec!["ferry.jobs.>".into()],
            retention: stream::RetentionPolicy::WorkQueue,
            discard: stream::DiscardPolicy::New,
            duplicate_window: DEDUPE_WINDOW,
            max_messages: 1_000_000,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let progress = stream::Config {
            name: PROGRESS_STREAM.into(),
            subjects: vec!["ferry.progress.>".into()],
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(7 * 24 * 3600),
            duplicate_window: DEDUPE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let events = stream::Config {
            name: EVENTS_STREAM.into(),
            subjects: vec!["ferry.events.access.>".into()],
            retention: stream::RetentionPolicy::Limits,
            max_age: Duration::from_secs(7 * 24 * 3600),
            max_bytes: 8 << 30,
            duplicate_window: DEDUPE_WINDOW,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        for config in [jobs, progress, events] {
            let name = config.name.clone();
            self.js
                .get_or_create_stream(config)
                .await
                .map_err(|e| Error::Unavailable(format!("creating stream {name}: {e}")))?;
        }
        Ok(())
    }

    /// Publishes a batch, pipelined, and waits until JetStream stored every message.
    pub async fn publish_all(&self, messages: Vec<(String, String, Vec<u8>)>) -> Result<()> {
        let unavailable =
            |e: &dyn std::fmt::Display| Error::Unavailable(format!("publishing events: {e}"));
        let mut acks = Vec::with_capacity(messages.len());
        for (subject, message_id, payload) in messages {
            let publish = jetstream::message::PublishMessage::build()
                .payload(Bytes::from(payload))
                .message_id(message_id);
            acks.push(
                self.js
                    .send_publish(subject, publish)
                    .await
                    .map_err(|e| unavailable(&e))?,
            );
        }
        for ack in acks {
            ack.await.map_err(|e| unavailable(&e))?;
        }
        Ok(())
    }

    /// Publishes and waits for JetStream's acknowledgement that the message is stored.
    /// A repeat of `message_id` within the dedupe window is acknowledged but not stored
    /// twice.
    /// The current span's trace context travels in the message's headers.
    pub async fn publish(&self, subject: &str, message_id: &str, payload: Vec<u8>) -> Result<()> {
        let unavailable = |e: &dyn std::fmt::Display| {
            Error::Unavailable(format!("publishing {message_id} to {subject}: {e}"))
        };
        let mut headers = async_nats::HeaderMap::new();
        ferry_telemetry::propagation::inject_nats(&mut headers);
        let publish = jetstream::message::PublishMessage::build()
            .payload(Bytes::from(payload))
            .headers(headers)
            .message_id(message_id);
        let ack = self
            .js
            .send_publish(subject.to_owned(), publish)
            .await
            .map_err(|e| unavailable(&e))?;
        ack.await.map_err(|e| unavailable(&e))?;
        Ok(())
    }
}
