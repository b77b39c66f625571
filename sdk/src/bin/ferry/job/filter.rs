//! The object filter flags `job plan` and `job sync` share.

use clap::Args;
use ferry_sdk::{pb, Error};

use crate::parse::parse_bytes;

/// Which of the dataset's objects a job takes.
#[derive(Debug, Default, Args)]
pub struct FilterArgs {
    /// Only objects below this prefix of the dataset's path
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Only objects whose key matches this glob; repeatable
    #[arg(long = "include", value_name = "GLOB")]
    include: Vec<String>,
    /// Leave out objects whose key matches this glob; repeatable
    #[arg(long = "exclude", value_name = "GLOB")]
    exclude: Vec<String>,
    /// Only objects of at least this size, e.g. 64KiB
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    min_size: Option<u64>,
    /// Only objects of at most this size, e.g. 2GB; 0 means no limit
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    max_size: Option<u64>,
}

impl FilterArgs {
    /// The filter these flags ask for, `None` when no flag narrows the job; refuses a
    /// minimum size above the maximum.
    pub fn filter(&self) -> Result<Option<pb::ObjectFilter>, Error> {
        let min_size = self.min_size.unwrap_or(0);
        let max_size = self.max_size.unwrap_or(0);
        if max_size > 0 && min_size > max_size {
            return Err(Error::InvalidInput(format!(
                "--min-size ({min_size} bytes) is above --max-size ({max_size} bytes)"
            )));
        }
        let filtered = self.prefix.is_some()
            || !self.include.is_empty()
            || !self.exclude.is_empty()
            || min_size > 0
            || max_size > 0;
        Ok(filtered.then(|| pb::ObjectFilter {
            prefix: self.prefix.clone().unwrap_or_default(),
            include: self.include.clone(),
            exclude: self.exclude.clone(),
            min_size,
            max_size,
            modified_before: None,
            modified_after: None,
        }))
    }
}
