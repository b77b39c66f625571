use ferry_proto::v1::{self as pb, site_service_server::SiteService};
use tonic::{Request, Response, Status};

use super::caller::{caller, confine_to_site};
use crate::convert;
use crate::{
    domain::{name::Ref, page::PageRequest, site::Site},
    error::Error,
    service::Catalogue,
};

const MUTABLE: &[&str] = &[
    "options",
    "tier",
    "default_storage_class",
    "latency_ms",
    "bandwidth_limit_bytes_per_sec",
    "prices",
    "prices.storage_per_gb_month",
    "prices.retrieval_per_gb",
    "prices.egress_per_gb",
    "prices.per_1000_requests",
    "prices.min_storage_days",
    "credentials",
];
const IMMUTABLE: &[&str] = &[
    "id",
    "name",
    "uri",
    "credential_keys",
    "create_time",
    "update_time",
    "bytes_stored",
    "dataset_count",
];

pub struct SiteApi {
    catalogue: Catalogue,
}

impl SiteApi {
    pub fn new(catalogue: Catalogue) -> Self {
        SiteApi { catalogue }
    }

    /// The sites on the wire, each with what it holds.
    async fn with_usage(&self, sites: Vec<Site>) -> Result<Vec<pb::Site>, Status> {
        let ids: Vec<_> = sites.iter().map(|s| s.id).collect();
        let usage = self.catalogue.site_usage(&ids).await?;
        Ok(sites
            .into_iter()
            .map(|site| {
                let held = usage.get(&site.id).copied().unwrap_or_default();
                convert::site_to_pb(site, held)
            })
            .collect())
    }
}

#[tonic::async_trait]
impl SiteService for SiteApi {
    async fn create_site(
        &self,
        request: Request<pb::CreateSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let req = request.into_inner();
        let new = convert::new_site(req.site)?;
        let credentials = convert::credentials(req.credentials.into_iter().collect());
        let site = self
            .catalogue
            .create_site(new, credentials)
            .await
            .map_err(request_field)?;
        // A new site holds nothing yet.
        Ok(Response::new(convert::site_to_pb(site, Default::default())))
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let caller = caller(&request)?;
        let r = Ref::parse("site", &request.into_inner().site)?;
        let site = self.catalogue.get_site(&r).await?;
        confine_to_site(&caller, site.id)?;
        Ok(Response::new(self.with_usage(vec![site]).await?.remove(0)))
    }

    async fn list_sites(
        &self,
        request: Request<pb::ListSitesRequest>,
    ) -> Result<Response<pb::ListSitesResponse>, Status> {
        let req = request.into_inner();
        let page = PageRequest::parse(req.page_size, &req.page_token)?;
        let tier = convert::tier("tier", req.tier)?;
        let sites = self.catalogue.list_sites(tier, &page).await?;
        Ok(Response::new(pb::ListSitesResponse {
            sites: self.with_usage(sites.items).await?,
            next_page_token: sites.next_token,
        }))
    }

    async fn update_site(
        &self,
        request: Request<pb::UpdateSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let req = request.into_inner();
        let site = req.site.ok_or_else(|| Error::invalid("site", "required"))?;
        let target = convert::target("site", &site.id, &site.name)?;
        let paths = convert::check_mask(req.update_mask, MUTABLE, IMMUTABLE)?;
        let patch = convert::site_patch(site, req.credentials, &paths)?;
        let updated = self
            .catalogue
            .update_site(&target, &patch)
            .await
            .map_err(request_field)?;
        Ok(Response::new(
            self.with_usage(vec![updated]).await?.remove(0),
        ))
    }

    async fn delete_site(
        &self,
        request: Request<pb::DeleteSiteRequest>,
    ) -> Result<Response<pb::DeleteSiteResponse>, Status> {
        let r = Ref::parse("site", &request.into_inner().site)?;
        self.catalogue.delete_site(&r).await?;
        Ok(Response::new(pb::DeleteSiteResponse {}))
    }
}

/// Names a refused field as the request does: credentials are a field of the request,
/// everything else one of its `site`.
fn request_field(e: Error) -> Error {
    match e {
        Error::InvalidArgument { ref field, .. } if field.starts_with("credentials") => e,
        e => e.within("site"),
    }
}
