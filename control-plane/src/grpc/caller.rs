//! Who makes the call a handler serves, as the authentication layer found, and the few
//! reads an agent token may make only about its own site.

use tonic::{Request, Status};

use crate::{
    domain::{ids::SiteId, job::Job, principal::Principal},
    error::Error,
};

/// The caller of `request`. The authentication layer puts it there for every
/// `ferry.v1` call; a request without one never passed that layer, so it is refused.
pub fn caller<T>(request: &Request<T>) -> Result<Principal, Status> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or_else(|| {
            Status::from(Error::Internal(
                "a call reached its handler without passing authentication".into(),
            ))
        })
}

/// An agent token reads only its own site.
pub fn confine_to_site(caller: &Principal, site: SiteId) -> Result<(), Status> {
    match caller.site {
        Some(bound) if bound != site => {
            Err(Error::PermissionDenied(format!("{caller} is bound to another site")).into())
        }
        _ => Ok(()),
    }
}

/// An agent token reads only the jobs that involve its site.
pub fn confine_to_job(caller: &Principal, job: &Job) -> Result<(), Status> {
    match caller.site {
        Some(bound)
            if ![
                job.source_site_id,
                job.destination_site_id,
                job.executing_site_id,
            ]
            .contains(&bound) =>
        {
            Err(Error::PermissionDenied(format!(
                "{caller} is bound to a site that job {} does not involve",
                job.id
            ))
            .into())
        }
        _ => Ok(()),
    }
}
