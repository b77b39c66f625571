use tracing::info;

use super::{conflict, Catalogue, UPDATE_ATTEMPTS};
use crate::{
    domain::{
        ids::SiteId,
        name::Ref,
        page::{Page, PageRequest},
        site::{check_settings, Credentials, NewSite, Site, SitePatch},
        tier::Tier,
    },
    error::{Error, Result},
    store::CredentialsUpdate,
};

impl Catalogue {
    pub async fn create_site(&self, new: NewSite, credentials: Credentials) -> Result<Site> {
        crate::call::set_target(format!("site:{}", new.name));
        new.validate()?;
        check_settings(&new.uri, &new.options, &credentials)?;
        let now = self.clock().now();
        let site = Site {
            id: SiteId::new(),
            name: new.name,
            uri: new.uri,
            options: new.options,
            tier: new.tier,
            default_storage_class: new.default_storage_class,
            latency_ms: new.latency_ms,
            prices: new.prices,
            bandwidth_limit: new.bandwidth_limit,
            credential_keys: credentials.keys(),
            created_at: now,
            updated_at: now,
        };
        let sealed = if credentials.is_empty() {
            None
        } else {
            Some(self.vault.seal(site.id, &credentials)?)
        };
        self.store.insert_site(&site, sealed).await?;
        info!(site = %site.name, site_id = %site.id, uri = %site.uri, "site created");
        Ok(site)
    }

    pub async fn get_site(&self, r: &Ref<SiteId>) -> Result<Site> {
        self.store
            .find_site(r)
            .await?
            .ok_or_else(|| Error::not_found("site", r))
    }

    pub async fn list_sites(&self, tier: Option<Tier>, page: &PageRequest) -> Result<Page<Site>> {
        self.store.list_sites(tier, page).await
    }

    /// What each of `sites` holds; a site without replicas is absent.
    pub async fn site_usage(
        &self,
        sites: &[SiteId],
    ) -> Result<std::collections::HashMap<SiteId, crate::store::SiteUsage>> {
        self.store.site_usage(sites).await
    }

    pub async fn update_site(&self, r: &Ref<SiteId>, patch: &SitePatch) -> Result<Site> {
        crate::call::set_target(format!("site:{r}"));
        for _ in 0..UPDATE_ATTEMPTS {
            let mut site = self.get_site(r).await?;
            let read_at = site.updated_at;
            site.apply(patch)?;
            if patch.options.is_some() || patch.credentials.is_some() {
                let credentials = match &patch.credentials {
                    Some(credentials) => credentials.clone(),
                    None => self.site_credentials(site.id).await?,
                };
                check_settings(&site.uri, &site.options, &credentials)?;
            }
            site.updated_at = self.clock().next_update(read_at);
            let credentials = match &patch.credentials {
                None => CredentialsUpdate::Keep,
                Some(c) if c.is_empty() => CredentialsUpdate::Replace(None),
                Some(c) => CredentialsUpdate::Replace(Some(self.vault.seal(site.id, c)?)),
            };
            if self
                .store
                .update_site(&site, read_at, credentials, &patch.describe())
                .await?
            {
                info!(site = %site.name, site_id = %site.id, "site updated");
                return Ok(site);
            }
        }
        Err(conflict("site", r))
    }

    pub async fn delete_site(&self, r: &Ref<SiteId>) -> Result<()> {
        crate::call::set_target(format!("site:{r}"));
        let site = self.get_site(r).await?;
        self.store.delete_site(&site).await?;
        info!(site = %site.name, site_id = %site.id, "site deleted");
        Ok(())
    }

    /// Resolves a site named in a request body; a missing one is that field's error.
    pub(crate) async fn referenced_site(&self, field: &str, r: &Ref<SiteId>) -> Result<Site> {
        self.store
            .find_site(r)
            .await?
            .ok_or_else(|| Error::invalid(field, format!("site {r} does not exist")))
    }
}

impl Catalogue {
    /// The id of an optional site filter, resolved like [`Catalogue::referenced_site`].
    pub(crate) async fn referenced_site_id(
        &self,
        field: &str,
        r: Option<&Ref<SiteId>>,
    ) -> Result<Option<SiteId>> {
        match r {
            Some(r) => Ok(Some(self.referenced_site(field, r).await?.id)),
            None => Ok(None),
        }
    }

    /// A site's decrypted credentials (empty when it has none). Only the agent-access
    /// use case calls this; nothing returns them to clients.
    pub async fn site_credentials(&self, id: SiteId) -> Result<Credentials> {
        match self.store.site_credentials(id).await? {
            Some(sealed) => self.vault.open(id, &sealed),
            None => Ok(Credentials::default()),
        }
    }
}
