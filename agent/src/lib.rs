//! Ferry's agent: the data plane that runs near a storage site and moves a dataset's
//! objects between sites.
//!
//! - [`storage`] turns a site's URI, options and credentials into an OpenDAL operator
//!   rooted at one dataset.
//! - [`transfer`] lists, copies (hashing with xxh3-128 on the way), verifies and deletes
//!   objects through those operators, streaming with bounded memory.
//! - [`s3`] reaches S3 datasets with `aws-sdk-s3` for server-side copies and multipart
//!   uploads that survive a restart.

pub mod bandwidth;
pub mod budget;
pub mod config;
pub mod consumer;
pub mod control;
mod destination;
pub mod executor;
pub mod filter;
pub mod job_watch;
pub mod journal;
mod local_file;
pub mod multipart;
pub mod report;
pub mod s3;
pub mod single_put;
pub mod storage;
pub mod transfer;

pub use storage::{operator, SiteAccess, StorageError};
pub use transfer::{
    copy_object, delete_object, hash_object, hash_streamed, list, parse_xxh3_hex, verify_object,
    xxh3_hex, Copied, CopyOptions, ObjectInfo, TransferError, Verified, VerifyMode,
};
