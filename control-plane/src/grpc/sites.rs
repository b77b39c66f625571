use ferry_proto::v1::{self as pb, site_service_server::SiteService};
use tonic::{Request, Response, Status};

use super::convert;
use crate::{
    domain::{
        name::Ref,
        page::PageRequest,
        site::{PricesPatch, SitePatch},
    },
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
];

pub struct SiteApi {
    catalogue: Catalogue,
}

impl SiteApi {
    pub fn new(catalogue: Catalogue) -> Self {
        SiteApi { catalogue }
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
        let site = self.catalogue.create_site(new, credentials).await?;
        Ok(Response::new(convert::site_to_pb(site)))
    }

    async fn get_site(
        &self,
        request: Request<pb::GetSiteRequest>,
    ) -> Result<Response<pb::Site>, Status> {
        let r = Ref::parse("site", &request.into_inner().site)?;
        let site = self.catalogue.get_site(&r).await?;
        Ok(Response::new(convert::site_to_pb(site)))
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
            sites: sites.items.into_iter().map(convert::site_to_pb).collect(),
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
        let patch = site_patch(site, req.credentials, &paths)?;
        let updated = self
            .catalogue
            .update_site(&target, &patch)
            .await
            .map_err(|e| match e {
                // Credentials are a field of the request, not of the site message.
                Error::InvalidArgument { ref field, .. } if field.starts_with("credentials") => e,
                e => e.within("site"),
            })?;
        Ok(Response::new(convert::site_to_pb(updated)))
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

fn site_patch(
    site: pb::Site,
    credentials: std::collections::HashMap<String, String>,
    paths: &[String],
) -> Result<SitePatch, Error> {
    let has = |p: &str| paths.iter().any(|x| x == p);
    let prices = site.prices.unwrap_or_default();
    let price =
        |name: &str, value: f64| (has("prices") || has(&format!("prices.{name}"))).then_some(value);
    Ok(SitePatch {
        options: has("options").then(|| site.options.into_iter().collect()),
        tier: if has("tier") {
            Some(convert::required_tier("site.tier", site.tier)?)
        } else {
            None
        },
        default_storage_class: has("default_storage_class").then_some(site.default_storage_class),
        latency_ms: has("latency_ms").then_some(site.latency_ms),
        bandwidth_limit: has("bandwidth_limit_bytes_per_sec").then_some(
            (site.bandwidth_limit_bytes_per_sec != 0).then_some(site.bandwidth_limit_bytes_per_sec),
        ),
        prices: PricesPatch {
            storage_per_gb_month: price("storage_per_gb_month", prices.storage_per_gb_month),
            retrieval_per_gb: price("retrieval_per_gb", prices.retrieval_per_gb),
            egress_per_gb: price("egress_per_gb", prices.egress_per_gb),
            per_1000_requests: price("per_1000_requests", prices.per_1000_requests),
            min_storage_days: (has("prices") || has("prices.min_storage_days"))
                .then_some(prices.min_storage_days),
        },
        credentials: has("credentials")
            .then(|| convert::credentials(credentials.into_iter().collect())),
    })
}
