//! Ferry's storage layer, shared by the control plane and the agents.
//!
//! - [`SiteUri`] is the one parser of a site URI (`file://`, `s3://`, `gs://`,
//!   `azblob://`, `memory://`), and [`Backend::parse`] the one check of a site's
//!   options and credentials: the control plane refuses a site that cannot work when it
//!   is created, with the same code the agent later builds its clients with.
//! - [`Store`] is one dataset on one site, opened: an OpenDAL operator rooted at the
//!   dataset, with timeouts and retries of temporary failures, and the typed settings
//!   for the clients OpenDAL does not cover.
//! - [`list`] and [`ObjectFilter`] list a dataset page by page through a plan's filter.
//! - [`Store::write`] and [`Store::writer`] write objects the way each backend takes
//!   them, large ones included ([`gcs`] for GCS resumable uploads).
//! - [`ObjectError`] is the one object-level error, classified by [`ErrorKind`];
//!   [`InvalidField`] names a setting that cannot work.

mod error;
mod filter;
pub mod fs_write;
pub mod gcs;
mod list;
mod list_fs;
mod settings;
mod store;
mod uri;
mod write;

pub use error::{classify_opendal, classify_s3, ErrorKind, InvalidField, ObjectError, Operation};
pub use filter::{FilterSpec, ObjectFilter};
pub use list::{list, list_sizes, list_sweeping, stat_local, stat_sizes, ObjectInfo};
pub use settings::{
    credential_keys, option_keys, AzblobSite, Backend, GcsSite, S3Keys, S3Site,
    DEFAULT_GCS_ENDPOINT, DEFAULT_S3_REGION,
};
pub use store::{object_url, SiteAccess, Store};
pub use uri::{normalise_path, Scheme, SiteUri};
pub use write::{Attributes, GcsWriter, ObjectWriter, Written};

/// Re-exported so that users of [`Store::op`] name the same OpenDAL.
pub use opendal;
