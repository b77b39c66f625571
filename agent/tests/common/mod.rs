//! What the agent's test files share.

use ferry_agent::s3::S3Dataset;
use ferry_proto::v1::Tier;
use ferry_storage::{SiteAccess, Store};
use ferry_tests::S3Server;
use secrecy::SecretString;

/// Dataset `path` of a site on `bucket` of the test server, as the control plane hands
/// it to the agent (the site is rooted at `ferry/` in the bucket).
pub fn s3_site_access(server: &S3Server, bucket: &str, path: &str) -> SiteAccess {
    let (site, credentials) = server.site("s3-site", bucket, Tier::Hot);
    SiteAccess {
        uri: site.uri,
        options: site.options.into_iter().collect(),
        credentials: credentials
            .into_iter()
            .map(|(k, v)| (k, SecretString::from(v)))
            .collect(),
        path: path.to_owned(),
    }
}

/// The S3 dataset of `access`, as the agent opens it.
pub fn s3_dataset(access: &SiteAccess) -> S3Dataset {
    let store = Store::open(access).unwrap();
    S3Dataset::for_store(&store).expect("an s3 site")
}
