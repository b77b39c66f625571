//! Both ends of a job, opened once per task.

use crate::{
    budget::copy_footprint,
    s3::S3Dataset,
    single_put,
    storage::{operator, SiteAccess},
    transfer::CopyOptions,
};

/// Both ends of a job, as operators and, for S3, as native clients.
pub(super) struct Sites {
    pub src: opendal::Operator,
    pub dst: opendal::Operator,
    pub src_s3: Option<S3Dataset>,
    pub dst_s3: Option<S3Dataset>,
    /// Source and destination are the same objects: a storage-class change in place,
    /// where each object is copied onto itself server-side and none is ever skipped.
    pub in_place: bool,
}

impl Sites {
    pub fn new(source: &SiteAccess, destination: &SiteAccess) -> anyhow::Result<Self> {
        Ok(Sites {
            src: operator(source).map_err(|e| anyhow::anyhow!("source: {e}"))?,
            dst: operator(destination).map_err(|e| anyhow::anyhow!("destination: {e}"))?,
            src_s3: S3Dataset::for_site(source).map_err(|e| anyhow::anyhow!("source: {e}"))?,
            dst_s3: S3Dataset::for_site(destination)
                .map_err(|e| anyhow::anyhow!("destination: {e}"))?,
            in_place: source.same_objects(destination),
        })
    }

    /// How an object of `size` bytes goes from the source to the destination.
    pub fn route(&self, size: u64, options: &CopyOptions) -> Route<'_> {
        if let Some((src, dst)) = self.server_side() {
            return Route::ServerSide(src, dst);
        }
        match &self.dst_s3 {
            Some(dst) if size > options.multipart_threshold() => Route::Multipart(dst),
            Some(dst) if size > options.chunk_size as u64 => Route::Streamed(dst),
            _ => Route::Through,
        }
    }

    /// What a copy of a `size`-byte object reserves of the memory budget before it
    /// starts: nothing for a server-side copy, which holds no bytes, nor for a multipart
    /// upload, whose parts reserve their own room as they are read; a few chunks for a
    /// streamed request.
    pub fn footprint(&self, size: u64, options: &CopyOptions) -> u64 {
        match self.route(size, options) {
            Route::ServerSide(..) => 0,
            Route::Multipart(_) if options.part_budget.is_some() => 0,
            Route::Streamed(_) => single_put::FOOTPRINT,
            Route::Multipart(_) | Route::Through => copy_footprint(size, options),
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
    /// Through OpenDAL: read whole and written in one request up to a part, else
    /// written in chunks as the destination takes them.
    Through,
}
