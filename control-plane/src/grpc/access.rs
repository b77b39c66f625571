use ferry_proto::{
    time::{from_timestamp, to_timestamp},
    v1::{self as pb, access_event_service_server::AccessEventService},
};
use futures::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use crate::{domain::name::Ref, error::Error, service::AccessEvents};

pub struct AccessApi {
    events: AccessEvents,
}

impl AccessApi {
    pub fn new(events: AccessEvents) -> Self {
        AccessApi { events }
    }
}

#[tonic::async_trait]
impl AccessEventService for AccessApi {
    async fn record_access_events(
        &self,
        request: Request<pb::RecordAccessEventsRequest>,
    ) -> Result<Response<pb::RecordAccessEventsResponse>, Status> {
        let accepted = self.events.record(request.into_inner().events).await?;
        Ok(Response::new(pb::RecordAccessEventsResponse { accepted }))
    }

    async fn stream_access_events(
        &self,
        request: Request<Streaming<pb::RecordAccessEventsRequest>>,
    ) -> Result<Response<pb::RecordAccessEventsResponse>, Status> {
        let mut stream = request.into_inner();
        let mut accepted = 0;
        while let Some(batch) = stream.next().await {
            accepted += self.events.record(batch?.events).await?;
        }
        Ok(Response::new(pb::RecordAccessEventsResponse { accepted }))
    }

    async fn get_access_stats(
        &self,
        request: Request<pb::GetAccessStatsRequest>,
    ) -> Result<Response<pb::GetAccessStatsResponse>, Status> {
        let req = request.into_inner();
        let dataset = Ref::parse("dataset", &req.dataset)?;
        let time = |field: &str, t: Option<prost_types::Timestamp>| {
            t.map(|t| {
                from_timestamp(&t).ok_or_else(|| Error::invalid(field, "not a valid timestamp"))
            })
            .transpose()
        };
        let from = time("start_time", req.start_time)?;
        let to = time("end_time", req.end_time)?;
        let hours = self.events.stats(&dataset, from, to).await?;
        Ok(Response::new(pb::GetAccessStatsResponse {
            hours: hours
                .into_iter()
                .map(|(hour, h)| pb::HourlyAccess {
                    hour: Some(to_timestamp(hour)),
                    reads: h.reads,
                    writes: h.writes,
                    bytes_read: h.bytes_read,
                    bytes_written: h.bytes_written,
                    latency_ms_sum: h.latency_ms_sum,
                })
                .collect(),
        }))
    }
}
