//! Both ends of a job, opened once per task.

use ferry_storage::{gcs::GcsUploads, SiteAccess, Store};

use super::TaskError;
use crate::{budget::copy_footprint, s3, s3::S3Dataset, transfer::CopyOptions};

/// Both ends of a job, as stores and, for S3 and GCS, as native clients.
pub(super) struct Sites {
    pub src: Store,
    pub dst: Store,
    pub src_s3: Option<S3Dataset>,
    pub dst_s3: Option<S3Dataset>,
    /// The destination's resumable uploads, on GCS.
    pub dst_gcs: Option<GcsUploads>,
    /// Source and destination are the same objects: a storage-class change in place,
    /// where each object is copied onto itself server-side and none is ever skipped.
    pub in_place: bool,
}

impl Sites {
    /// Opens both ends; what the job writes gets `storage_class` (empty: the
    /// destination's default) where the destination has classes, and goes to a file
    /// system through temporary files named after the job, which every attempt of it
    /// shares.
    pub fn open(
        source: &SiteAccess,
        destination: &SiteAccess,
        storage_class: &str,
        job: &str,
    ) -> Result<Self, TaskError> {
        let src = Store::open(source).map_err(|source| TaskError::Site {
            side: "source",
            source,
        })?;
        let dst = Store::open_with_class(destination, Some(storage_class))
            .map_err(|source| TaskError::Site {
                side: "destination",
                source,
            })?
            .writing_for(job);
        Ok(Sites {
            src_s3: S3Dataset::for_store(&src),
            dst_s3: S3Dataset::for_store(&dst),
            dst_gcs: dst.gcs_uploads(),
            in_place: src.same_objects(&dst),
            src,
            dst,
        })
    }

    /// How an object of `size` bytes goes from the source to the destination.
    pub fn route(&self, size: u64, options: &CopyOptions) -> Route<'_> {
        if let Some((src, dst)) = self.server_side() {
            return Route::ServerSide(src, dst);
        }
        let chunk = options.chunk_size as u64;
        match (&self.dst_s3, &self.dst_gcs) {
            (Some(dst), _) if size > options.multipart_threshold() => Route::Multipart(dst),
            (Some(dst), _) if size > chunk => Route::Streamed(dst),
            (_, Some(dst)) if size > chunk => Route::Resumable(dst),
            _ => Route::Through,
        }
    }

    /// What a copy of a `size`-byte object reserves of the memory budget before it
    /// starts: nothing for a server-side copy, which holds no bytes, nor for a resumable
    /// upload, whose parts reserve their own room as they are read; a few chunks for a
    /// streamed request.
    pub fn footprint(&self, size: u64, options: &CopyOptions) -> u64 {
        match self.route(size, options) {
            Route::ServerSide(..) => 0,
            Route::Multipart(_) | Route::Resumable(_) if options.part_budget.is_some() => 0,
            Route::Streamed(_) => s3::STREAMED_FOOTPRINT,
            Route::Multipart(_) | Route::Resumable(_) | Route::Through => {
                copy_footprint(size, options)
            }
        }
    }

    /// Source and destination when the service can copy between them by itself.
    pub fn server_side(&self) -> Option<(&S3Dataset, &S3Dataset)> {
        match (&self.src_s3, &self.dst_s3) {
            (Some(src), Some(dst)) if dst.can_copy_from(src) => Some((src, dst)),
            _ => None,
        }
    }
}

/// How one object is copied.
pub(super) enum Route<'a> {
    /// The service copies it from the first dataset to the second.
    ServerSide(&'a S3Dataset, &'a S3Dataset),
    /// A resumable multipart upload to S3: above the multipart threshold.
    Multipart(&'a S3Dataset),
    /// One request to S3 whose body streams from the source: above a part, up to the
    /// multipart threshold.
    Streamed(&'a S3Dataset),
    /// A resumable session to GCS: above a part.
    Resumable(&'a GcsUploads),
    /// Through the store: read whole and written in one request up to a part, else
    /// written in chunks as the destination takes them.
    Through,
}
