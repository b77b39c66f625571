//! Ferry's agent: the data plane that runs near a storage site and moves a dataset's
//! objects between sites.
//!
//! - [`consumer`] takes the site's tasks from NATS JetStream; [`executor`] runs each one
//!   (list, copy and verify, retire, abort uploads) and [`report`] streams its progress
//!   back; [`dry_run`] answers the control plane's dry runs over NATS request and reply.
//! - [`transfer`] copies (hashing with xxh3-128 on the way), verifies and deletes
//!   objects through the stores of [`ferry_storage`], streaming with bounded memory.
//! - [`s3`] reaches S3 with `aws-sdk-s3` for server-side copies, streamed requests and
//!   multipart uploads that survive a restart; [`gcs_upload`] does the same for GCS
//!   with resumable sessions; [`parts`] is what both share.
//! - [`wire`] holds every conversion to and from the `ferry.v1` messages.

pub mod access_cache;
pub mod bandwidth;
pub mod budget;
pub mod config;
pub mod consumer;
pub mod control;
mod destination;
pub mod dry_run;
pub mod executor;
pub mod gcs_upload;
pub mod job_watch;
pub mod journal;
mod local_copy;
mod local_file;
mod local_write;
pub mod metrics;
pub mod parts;
pub mod report;
pub mod s3;
pub mod transfer;
pub mod watch;
pub mod wire;

pub use transfer::{
    copy_object, delete_object, hash_object, hash_streamed, parse_xxh3_hex, verify_object,
    xxh3_hex, Copied, CopyOptions, Verified, VerifyMode,
};
