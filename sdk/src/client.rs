//! The connection to a control plane and the catalogue calls (sites, datasets, policies)
//! built on the generated stubs. Migration jobs and agents are in `jobs.rs`.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use ferry_proto::v1 as pb;
use pb::access_event_service_client::AccessEventServiceClient;
use pb::agent_service_client::AgentServiceClient;
use pb::dataset_service_client::DatasetServiceClient;
use pb::job_service_client::JobServiceClient;
use pb::policy_service_client::PolicyServiceClient;
use pb::recommendation_service_client::RecommendationServiceClient;
use pb::site_service_client::SiteServiceClient;
use tonic::transport::{Channel, Endpoint};

use tonic::service::interceptor::InterceptedService;

use crate::auth::{Bearer, Transport};
use crate::error::{cause_chain, Error};
use crate::tls::TlsFiles;

/// How long [`Client::connect`] waits for the TCP connection (and each reconnection).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Page size asked for by the `list_*` methods; the server caps it at 1000.
pub(crate) const PAGE_SIZE: i32 = 500;

/// A handle on one Ferry control plane.
///
/// Cloning is cheap: clones share one HTTP/2 connection, which reconnects on its own after
/// a failure. Calls may run concurrently from several tasks.
#[derive(Clone, Debug)]
pub struct Client {
    channel: Channel,
    endpoint: String,
    bearer: Bearer,
}

/// Filters of [`Client::list_datasets`]; each one set narrows the result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatasetFilter {
    /// The site (id or name) holding the primary replica.
    pub site: Option<String>,
    /// The dataset's current tier.
    pub tier: Option<pb::Tier>,
    /// The dataset's owner, exactly.
    pub owner: Option<String>,
    /// Labels the dataset must carry, each with exactly this value.
    pub labels: HashMap<String, String>,
    /// Text the dataset's name contains, in any case.
    pub name_contains: Option<String>,
}

/// A dataset with where its bytes are and what governs it.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetDetails {
    /// The dataset itself; always present, unlike in the wire message.
    pub dataset: pb::Dataset,
    /// Every replica, primary first when the server orders them so.
    pub replicas: Vec<pb::Replica>,
    /// The highest-priority policy whose selector matches the dataset's labels.
    pub effective_policy: Option<pb::Policy>,
}

impl Client {
    /// Connects to the control plane at `endpoint` and waits until the connection is up.
    ///
    /// `endpoint` is `http://host:port`, `https://host:port` (TLS, trusting the
    /// platform's root certificates) or `host:port` (plain-text HTTP/2). Fails with
    /// [`Error::InvalidInput`] for a malformed address and with [`Error::Connect`] when
    /// nothing answers within [`CONNECT_TIMEOUT`] or the TLS handshake fails.
    pub async fn connect(endpoint: &str) -> Result<Client, Error> {
        Client::connect_with(endpoint, &TlsFiles::default()).await
    }

    /// Like [`Client::connect`], with TLS files: a CA to trust the control plane by and,
    /// for mutual TLS, the client's certificate and key. With any file given, `host:port`
    /// means `https://host:port`, and `http://` is refused rather than silently ignoring
    /// them. A file that cannot be read or holds nothing usable is
    /// [`Error::InvalidInput`], before anything is dialled.
    pub async fn connect_with(endpoint: &str, tls: &TlsFiles) -> Result<Client, Error> {
        let (endpoint, target) = parse_endpoint(endpoint, tls)?;
        let channel = target.connect().await.map_err(|source| Error::Connect {
            endpoint: endpoint.clone(),
            source,
        })?;
        Ok(Client {
            channel,
            endpoint,
            bearer: Bearer::default(),
        })
    }

    /// Like [`Client::connect`] but does not dial until the first call; an unreachable
    /// server then shows as an [`Error::Rpc`] with code `Unavailable`.
    pub fn connect_lazy(endpoint: &str) -> Result<Client, Error> {
        let (endpoint, target) = parse_endpoint(endpoint, &TlsFiles::default())?;
        let channel = target.connect_lazy();
        Ok(Client {
            channel,
            endpoint,
            bearer: Bearer::default(),
        })
    }

    /// Wraps a channel the caller built (for interceptors or custom timeouts).
    pub fn from_channel(channel: Channel, endpoint: impl Into<String>) -> Client {
        Client {
            channel,
            endpoint: endpoint.into(),
            bearer: Bearer::default(),
        }
    }

    /// The endpoint this client talks to, with its scheme.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// This client, sending `token` (`fy_…`) as `authorization: Bearer <token>` on
    /// every call, as the control plane requires unless authentication is off.
    pub fn with_token(mut self, token: &str) -> Result<Client, Error> {
        self.bearer = Bearer::new(token)?;
        Ok(self)
    }

    /// The underlying channel, for stubs this crate does not wrap; calls on it carry no
    /// token (wrap it in [`Client::transport`] for that).
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// The channel with this client's token added to each call: what its stubs use.
    pub fn transport(&self) -> Transport {
        InterceptedService::new(self.channel.clone(), self.bearer.clone())
    }

    /// A `SiteService` stub on this client's connection.
    pub fn sites(&self) -> SiteServiceClient<Transport> {
        SiteServiceClient::new(self.transport())
    }

    /// A `DatasetService` stub on this client's connection.
    pub fn datasets(&self) -> DatasetServiceClient<Transport> {
        DatasetServiceClient::new(self.transport())
    }

    /// A `PolicyService` stub on this client's connection.
    pub fn policies(&self) -> PolicyServiceClient<Transport> {
        PolicyServiceClient::new(self.transport())
    }

    /// An `AccessEventService` stub on this client's connection.
    pub fn access_events(&self) -> AccessEventServiceClient<Transport> {
        AccessEventServiceClient::new(self.transport())
    }

    /// A `RecommendationService` stub on this client's connection.
    pub fn recommendations(&self) -> RecommendationServiceClient<Transport> {
        RecommendationServiceClient::new(self.transport())
    }

    /// A `JobService` stub on this client's connection.
    pub fn jobs(&self) -> JobServiceClient<Transport> {
        JobServiceClient::new(self.transport())
    }

    /// An `AgentService` stub on this client's connection.
    pub fn agents(&self) -> AgentServiceClient<Transport> {
        AgentServiceClient::new(self.transport())
    }

    // Sites.

    /// Registers a site. `credentials` are stored encrypted and never returned; the
    /// answer lists only their key names in `credential_keys`.
    pub async fn create_site(
        &self,
        site: pb::Site,
        credentials: HashMap<String, String>,
    ) -> Result<pb::Site, Error> {
        let request = pb::CreateSiteRequest {
            site: Some(site),
            credentials,
        };
        Ok(self.sites().create_site(request).await?.into_inner())
    }

    /// The site with this id or name.
    pub async fn get_site(&self, site: &str) -> Result<pb::Site, Error> {
        let site = required("site id or name", site)?;
        let request = pb::GetSiteRequest { site };
        Ok(self.sites().get_site(request).await?.into_inner())
    }

    /// Every site, of `tier` only when given, fetching all pages.
    pub async fn list_sites(&self, tier: Option<pb::Tier>) -> Result<Vec<pb::Site>, Error> {
        let tier = tier.map_or(0, i32::from);
        collect_pages(|page_token| {
            let mut stub = self.sites();
            let request = pb::ListSitesRequest {
                page_size: PAGE_SIZE,
                page_token,
                tier,
            };
            async move {
                let page = stub.list_sites(request).await?.into_inner();
                Ok((page.sites, page.next_page_token))
            }
        })
        .await
    }

    /// Changes the fields of `site` named in `update_mask` on the site selected by
    /// `site.id` or, when empty, `site.name`.
    ///
    /// With `credentials`, the stored credentials are replaced by these and "credentials"
    /// is added to the mask. Fails with [`Error::InvalidInput`] before sending when
    /// neither id nor name is set or when there is nothing to change.
    pub async fn update_site<S: Into<String>>(
        &self,
        site: pb::Site,
        update_mask: impl IntoIterator<Item = S>,
        credentials: Option<HashMap<String, String>>,
    ) -> Result<pb::Site, Error> {
        selects("site", &site.id, &site.name)?;
        let mut paths = mask_paths(update_mask);
        if credentials.is_some() && !paths.iter().any(|p| p == "credentials") {
            paths.push("credentials".to_owned());
        }
        let request = pb::UpdateSiteRequest {
            site: Some(site),
            update_mask: Some(field_mask("site", paths)?),
            credentials: credentials.unwrap_or_default(),
        };
        Ok(self.sites().update_site(request).await?.into_inner())
    }

    /// Deletes the site with this id or name; the server refuses with
    /// `FailedPrecondition` while datasets or policies still refer to it.
    pub async fn delete_site(&self, site: &str) -> Result<(), Error> {
        let site = required("site id or name", site)?;
        self.sites()
            .delete_site(pb::DeleteSiteRequest { site })
            .await?;
        Ok(())
    }

    // Datasets.

    /// Registers a dataset; `dataset.site` may be the site's id or name.
    pub async fn create_dataset(&self, dataset: pb::Dataset) -> Result<pb::Dataset, Error> {
        let request = pb::CreateDatasetRequest {
            dataset: Some(dataset),
        };
        Ok(self.datasets().create_dataset(request).await?.into_inner())
    }

    /// The dataset with this id or name, its replicas and its effective policy.
    pub async fn get_dataset(&self, dataset: &str) -> Result<DatasetDetails, Error> {
        let dataset = required("dataset id or name", dataset)?;
        let answer = self
            .datasets()
            .get_dataset(pb::GetDatasetRequest { dataset })
            .await?
            .into_inner();
        let Some(found) = answer.dataset else {
            return Err(Error::Protocol(
                "GetDataset answered without a dataset".into(),
            ));
        };
        Ok(DatasetDetails {
            dataset: found,
            replicas: answer.replicas,
            effective_policy: answer.effective_policy,
        })
    }

    /// Every dataset matching `filter`, fetching all pages.
    pub async fn list_datasets(&self, filter: &DatasetFilter) -> Result<Vec<pb::Dataset>, Error> {
        let site = filter.site.clone().unwrap_or_default();
        let tier = filter.tier.map_or(0, i32::from);
        let owner = filter.owner.clone().unwrap_or_default();
        let name_contains = filter.name_contains.clone().unwrap_or_default();
        collect_pages(|page_token| {
            let mut stub = self.datasets();
            let request = pb::ListDatasetsRequest {
                page_size: PAGE_SIZE,
                page_token,
                site: site.clone(),
                tier,
                owner: owner.clone(),
                labels: filter.labels.clone(),
                name_contains: name_contains.clone(),
            };
            async move {
                let page = stub.list_datasets(request).await?.into_inner();
                Ok((page.datasets, page.next_page_token))
            }
        })
        .await
    }

    /// Changes the fields of `dataset` named in `update_mask` on the dataset selected by
    /// `dataset.id` or, when empty, `dataset.name`. Mutable fields: current_tier,
    /// latency_slo_ms, size_bytes, object_count, owner, labels.
    pub async fn update_dataset<S: Into<String>>(
        &self,
        dataset: pb::Dataset,
        update_mask: impl IntoIterator<Item = S>,
    ) -> Result<pb::Dataset, Error> {
        selects("dataset", &dataset.id, &dataset.name)?;
        let request = pb::UpdateDatasetRequest {
            dataset: Some(dataset),
            update_mask: Some(field_mask("dataset", mask_paths(update_mask))?),
        };
        Ok(self.datasets().update_dataset(request).await?.into_inner())
    }

    /// Deletes the dataset with this id or name from the catalogue.
    pub async fn delete_dataset(&self, dataset: &str) -> Result<(), Error> {
        let dataset = required("dataset id or name", dataset)?;
        self.datasets()
            .delete_dataset(pb::DeleteDatasetRequest { dataset })
            .await?;
        Ok(())
    }

    // Policies.

    /// Creates a policy; its selector must not be empty and its placement sites must exist.
    pub async fn create_policy(&self, policy: pb::Policy) -> Result<pb::Policy, Error> {
        let request = pb::CreatePolicyRequest {
            policy: Some(policy),
        };
        Ok(self.policies().create_policy(request).await?.into_inner())
    }

    /// The policy with this id or name.
    pub async fn get_policy(&self, policy: &str) -> Result<pb::Policy, Error> {
        let policy = required("policy id or name", policy)?;
        let request = pb::GetPolicyRequest { policy };
        Ok(self.policies().get_policy(request).await?.into_inner())
    }

    /// Every policy, or only those selecting `dataset` (id or name), fetching all pages.
    pub async fn list_policies(&self, dataset: Option<&str>) -> Result<Vec<pb::Policy>, Error> {
        let dataset = dataset.unwrap_or_default().to_owned();
        collect_pages(|page_token| {
            let mut stub = self.policies();
            let request = pb::ListPoliciesRequest {
                page_size: PAGE_SIZE,
                page_token,
                dataset: dataset.clone(),
            };
            async move {
                let page = stub.list_policies(request).await?.into_inner();
                Ok((page.policies, page.next_page_token))
            }
        })
        .await
    }

    /// Changes the fields of `policy` named in `update_mask` on the policy selected by
    /// `policy.id` or, when empty, `policy.name`. Any field but id, name and the
    /// timestamps may be named.
    pub async fn update_policy<S: Into<String>>(
        &self,
        policy: pb::Policy,
        update_mask: impl IntoIterator<Item = S>,
    ) -> Result<pb::Policy, Error> {
        selects("policy", &policy.id, &policy.name)?;
        let request = pb::UpdatePolicyRequest {
            policy: Some(policy),
            update_mask: Some(field_mask("policy", mask_paths(update_mask))?),
        };
        Ok(self.policies().update_policy(request).await?.into_inner())
    }

    /// Deletes the policy with this id or name.
    pub async fn delete_policy(&self, policy: &str) -> Result<(), Error> {
        let policy = required("policy id or name", policy)?;
        self.policies()
            .delete_policy(pb::DeletePolicyRequest { policy })
            .await?;
        Ok(())
    }
}

/// Normalises `raw` to a URL with a scheme and builds the endpoint to dial.
fn parse_endpoint(raw: &str, tls: &TlsFiles) -> Result<(String, Endpoint), Error> {
    let url = normalize_endpoint(raw, !tls.is_empty())?;
    let endpoint = Endpoint::from_shared(url.clone())
        .map_err(|e| Error::InvalidInput(format!("server address {raw:?}: {}", cause_chain(&e))))?
        .connect_timeout(CONNECT_TIMEOUT);
    if !url.starts_with("https://") {
        return Ok((url, endpoint));
    }
    let config = tls
        .client_config()
        .map_err(|e| Error::InvalidInput(format!("TLS {e}")))?;
    let endpoint = endpoint.tls_config(config).map_err(|e| {
        let hint = match tls.ca_file {
            None => " (no CA file was given: the platform's trusted roots are used)",
            Some(_) => "",
        };
        Error::InvalidInput(format!("TLS to {url}: {}{hint}", cause_chain(&e)))
    })?;
    Ok((url, endpoint))
}

/// `host:port` becomes `https://host:port` when the caller gave TLS files, else
/// `http://host:port`; an explicit `http://` or `https://` is kept, but `http://` with
/// TLS files is refused: the files would be ignored. Other schemes are refused.
fn normalize_endpoint(raw: &str, tls_files: bool) -> Result<String, Error> {
    let trimmed = raw.trim();
    if trimmed.is_empty() {
        return Err(Error::InvalidInput("server address is empty".into()));
    }
    let (scheme, rest) = match trimmed.split_once("://") {
        None if tls_files => ("https", trimmed),
        None => ("http", trimmed),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => ("https", rest),
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("http") && tls_files => {
            return Err(Error::InvalidInput(format!(
                "server address {raw:?}: TLS files were given but the address is plain-text \
                 http://; use https://"
            )))
        }
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => ("http", rest),
        Some((scheme, _)) => {
            return Err(Error::InvalidInput(format!(
                "server address {raw:?}: unsupported scheme {scheme:?}, only http and https \
                 are supported"
            )))
        }
    };
    if rest.is_empty() {
        return Err(Error::InvalidInput(format!(
            "server address {raw:?} has no host"
        )));
    }
    Ok(format!("{scheme}://{rest}"))
}

pub(crate) fn required(what: &str, value: &str) -> Result<String, Error> {
    if value.trim().is_empty() {
        Err(Error::InvalidInput(format!("{what} is empty")))
    } else {
        Ok(value.to_owned())
    }
}

fn selects(kind: &str, id: &str, name: &str) -> Result<(), Error> {
    if id.is_empty() && name.is_empty() {
        Err(Error::InvalidInput(format!(
            "{kind}.id or {kind}.name must say which {kind} to update"
        )))
    } else {
        Ok(())
    }
}

fn mask_paths<S: Into<String>>(paths: impl IntoIterator<Item = S>) -> Vec<String> {
    paths.into_iter().map(Into::into).collect()
}

fn field_mask(kind: &str, paths: Vec<String>) -> Result<prost_types::FieldMask, Error> {
    if paths.is_empty() {
        return Err(Error::InvalidInput(format!(
            "nothing to update: the {kind} update mask is empty"
        )));
    }
    Ok(prost_types::FieldMask { paths })
}

/// Calls `fetch` with each page token in turn, starting from the empty one, until the
/// server answers with an empty next token, and concatenates the items.
///
/// A token the server already handed out is a protocol error rather than an endless loop.
pub(crate) async fn collect_pages<T, F, Fut>(mut fetch: F) -> Result<Vec<T>, Error>
where
    F: FnMut(String) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut token = String::new();
    loop {
        let (page, next) = fetch(token).await?;
        items.extend(page);
        if next.is_empty() {
            return Ok(items);
        }
        if !seen.insert(next.clone()) {
            return Err(Error::Protocol(format!(
                "page token {next:?} was returned twice"
            )));
        }
        token = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_default_to_http() {
        let ok = |raw: &str| normalize_endpoint(raw, false).ok();
        assert_eq!(
            ok("127.0.0.1:50051").as_deref(),
            Some("http://127.0.0.1:50051")
        );
        assert_eq!(
            ok(" http://ferry:50051 ").as_deref(),
            Some("http://ferry:50051")
        );
        assert_eq!(ok("HTTP://ferry:1").as_deref(), Some("http://ferry:1"));
        assert!(ok("").is_none());
        assert!(ok("http://").is_none());
        assert_eq!(
            ok("https://ferry:443").as_deref(),
            Some("https://ferry:443")
        );
        let grpc = normalize_endpoint("grpc://ferry:443", false);
        assert!(matches!(grpc, Err(Error::InvalidInput(m)) if m.contains("unsupported scheme")));
    }

    #[test]
    fn tls_files_mean_https_and_refuse_plain_text() {
        let tls = |raw: &str| normalize_endpoint(raw, true);
        assert_eq!(
            tls("ferry:50051").ok().as_deref(),
            Some("https://ferry:50051")
        );
        assert_eq!(
            tls("HTTPS://ferry:1").ok().as_deref(),
            Some("https://ferry:1")
        );
        assert!(matches!(
            tls("http://ferry:50051"),
            Err(Error::InvalidInput(m)) if m.contains("use https://")
        ));
    }

    #[test]
    fn malformed_addresses_are_invalid_input() {
        assert!(matches!(
            Client::connect_lazy("host with spaces:1"),
            Err(Error::InvalidInput(_))
        ));
    }

    #[tokio::test]
    async fn pages_are_followed_until_the_token_is_empty() {
        let pages = HashMap::from([
            (String::new(), (vec![1, 2], "a".to_owned())),
            ("a".to_owned(), (vec![3], "b".to_owned())),
            ("b".to_owned(), (vec![], String::new())),
        ]);
        let items = collect_pages(|token| {
            let page = pages.get(&token).cloned();
            async move { page.ok_or_else(|| tonic::Status::not_found(token)) }
        })
        .await;
        assert_eq!(items.ok(), Some(vec![1, 2, 3]));
    }

    #[tokio::test]
    async fn a_repeated_page_token_is_a_protocol_error() {
        let result = collect_pages(|_token| async { Ok((vec![1], "same".to_owned())) }).await;
        assert!(matches!(result, Err(Error::Protocol(_))));
    }

    #[tokio::test]
    async fn updates_need_a_selector_and_a_mask() {
        let client = Client::connect_lazy("127.0.0.1:1");
        let Ok(client) = client else {
            panic!("a lazy client needs no server");
        };
        let unnamed = client
            .update_site(pb::Site::default(), ["tier"], None)
            .await;
        assert!(matches!(unnamed, Err(Error::InvalidInput(_))));
        let named = pb::Dataset {
            name: "genome".into(),
            ..Default::default()
        };
        let empty = client.update_dataset(named, Vec::<String>::new()).await;
        assert!(matches!(empty, Err(Error::InvalidInput(m)) if m.contains("mask is empty")));
    }
}
