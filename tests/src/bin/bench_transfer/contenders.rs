//! Who runs, with which settings, and in which order each round.

use super::*;

/// One tool and setting a workload runs with.
#[derive(Clone, Copy)]
pub(crate) enum Contender {
    Ferry(FerryVariant),
    Rclone(&'static str, &'static [&'static str]),
}

/// Ferry with each of `ferry`, then rclone with each of `rclone`.
pub(crate) fn contenders(ferry: &[FerryVariant], rclone: &[RcloneVariant]) -> Vec<Contender> {
    let ferry = ferry.iter().map(|&variant| Contender::Ferry(variant));
    let rclone = rclone
        .iter()
        .map(|&(variant, flags)| Contender::Rclone(variant, flags));
    ferry.chain(rclone).collect()
}

/// The contenders in the order they run in `round` (from 1): each round starts one
/// further along, so that no tool always runs first, right after the previous round's
/// clean-up and W2's deleted part files (which slow the creation of new files on this
/// file system for a minute or more), or always last.
pub(crate) fn in_turn<T>(mut contenders: Vec<T>, round: usize) -> Vec<T> {
    if !contenders.is_empty() {
        let by = (round.saturating_sub(1)) % contenders.len();
        contenders.rotate_left(by);
    }
    contenders
}

/// Ferry's destination, W3's destination, and rclone's destination.
pub(crate) const BUCKETS: [&str; 3] = ["bench", "bench-copy", "rclone"];

/// A way to run Ferry: its name in the results (and in dataset names), the verify
/// mode, and the file-system site whose agent runs it.
#[derive(Clone, Copy)]
pub(crate) struct FerryVariant {
    pub(crate) name: &'static str,
    pub(crate) verify: pb::VerifyMode,
    pub(crate) site: &'static str,
}

/// The agent of the `local` site runs with its defaults.
pub(crate) const MODES: [FerryVariant; 2] = [
    FerryVariant {
        name: "quick",
        verify: pb::VerifyMode::Quick,
        site: "local",
    },
    FerryVariant {
        name: "full",
        verify: pb::VerifyMode::Full,
        site: "local",
    },
];

/// The agent of `local-200`, on the same directory, sends objects to S3 in one request
/// up to 200 MiB (`multipart_threshold_mib`), as rclone does by default.
pub(crate) const CUTOFF_SITE: &str = "local-200";

/// W2's: both modes, and quick with one request up to 200 MiB, the like-for-like
/// comparison with rclone's single PUTs.
pub(crate) const W2_MODES: [FerryVariant; 3] = [
    MODES[0],
    MODES[1],
    FerryVariant {
        name: "quick-200",
        verify: pb::VerifyMode::Quick,
        site: CUTOFF_SITE,
    },
];

/// A name for a way to run rclone, and its flags.
pub(crate) type RcloneVariant = (&'static str, &'static [&'static str]);

/// rclone's default flags, and the ones tuned for many small files.
pub(crate) const RCLONE_VARIANTS: [RcloneVariant; 2] = [
    ("default", &[]),
    ("--transfers 32", &["--transfers", "32", "--checkers", "32"]),
];

/// W2's rclone variants: both of the above, which send each file below rclone's 200 MiB
/// cutoff in one PUT, and rclone sending what Ferry sends, multipart uploads of 8 MiB
/// parts. On s3s-fs, which writes every byte of a multipart upload twice, the request
/// shape decides much of the run, so the third is the like-for-like comparison.
pub(crate) const RCLONE_W2_VARIANTS: [RcloneVariant; 3] = [
    RCLONE_VARIANTS[0],
    RCLONE_VARIANTS[1],
    (
        "multipart 8 MiB",
        &["--s3-upload-cutoff", "8M", "--s3-chunk-size", "8M"],
    ),
];

/// W3's: rclone's default flags, with which it copies server-side on one endpoint.
pub(crate) const RCLONE_W3_VARIANTS: [RcloneVariant; 1] = [("server-side", &[])];

#[cfg(test)]
mod tests {
    use super::in_turn;

    #[test]
    fn each_round_starts_one_contender_further_along() {
        assert_eq!(in_turn(vec!['a', 'b', 'c'], 1), ['a', 'b', 'c']);
        assert_eq!(in_turn(vec!['a', 'b', 'c'], 2), ['b', 'c', 'a']);
        assert_eq!(in_turn(vec!['a', 'b', 'c'], 4), ['a', 'b', 'c']);
        assert!(in_turn(Vec::<char>::new(), 3).is_empty());
    }
}
