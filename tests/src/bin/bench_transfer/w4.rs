//! W4: many 4 KiB files from one directory tree to another (`file://` → `file://`).
//! The first copy: Ferry (quick verification) against `rclone copy` and `cp -r`, which
//! is the floor, each into a fresh directory. The incremental run: once a copy is in
//! step, 1% of the source files change, and Ferry's sync job copies them against
//! `rclone sync`. Interleaved round by round.
//!
//! Every round writes its trees into directories of its own, and none is deleted before
//! the benchmark ends (each round adds five times the workload's size on disk). On ext4
//! without a journal, the root file system of the machines measured here, every inode
//! allocation skips the free inodes deleted less than a minute ago, or five minutes
//! while their inode table block holds unwritten changes, as it does while files are
//! created beside them (`recently_deleted` in `fs/ext4/ialloc.c`). When each round
//! deleted its 500,000 files at its end, every file the next one created scanned past
//! them for minutes: `cp -r` took 5 to 8 s in a round 1 and 48 to 63 s in a round 2,
//! and a profile of an incremental run's copy put a fifth of both cores' samples in
//! that scan.

use super::*;

/// The W4 file size.
pub(crate) const W4_SIZE: usize = 4096;

impl Bench {
    /// One round of W4 from `gen/w4` into fresh directories below `out`; Ferry's agent
    /// is the one of site `local`, which holds both trees' source.
    pub(crate) async fn w4_round(
        &self,
        round: usize,
        agent: &Agent,
        out: &Path,
        rclone: bool,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let generated = self.gen.join("w4");
        let mut contenders = vec!["ferry quick", "cp -r"];
        if rclone {
            contenders.push("rclone default");
        }
        for who in in_turn(contenders, round) {
            let run = match who {
                "ferry quick" => {
                    let name = format!("w4-{round}");
                    self.linked_dataset(&name).await?;
                    self.ferry(
                        agent,
                        &name,
                        W4_SITE,
                        pb::VerifyMode::Quick,
                        std::slice::from_ref(&generated),
                        None,
                    )
                    .await?
                }
                "cp -r" => copy_tree(&generated, &out.join(format!("cp-{round}")))?,
                _ => self.rclone(
                    None,
                    &generated.display().to_string(),
                    &out.join(format!("rclone-{round}")).display().to_string(),
                    &[],
                    std::slice::from_ref(&generated),
                )?,
            };
            results.add(&format!("W4 {who}"), round, run);
        }
        // The trees stay until the benchmark ends (the module's notes say why).
        Ok(())
    }
}

impl Bench {
    /// One round of W4's incremental run: for each contender, a tree linked from
    /// `gen/w4` and a copy in step with it (Ferry's first sync; `cp -a`, which keeps the
    /// modification times rclone compares), then every hundredth file of the tree
    /// rewritten, then the timed run that brings the copy in step again.
    pub(crate) async fn w4_incremental_round(
        &self,
        round: usize,
        files: usize,
        agent: &Agent,
        out: &Path,
        rclone: bool,
        results: &mut Results,
    ) -> anyhow::Result<()> {
        let generated = self.gen.join("w4");
        let changed = changed_keys(files);
        let mut contenders = vec!["ferry sync"];
        if rclone {
            contenders.push("rclone sync");
        }
        for who in in_turn(contenders, round) {
            let run = match who {
                "ferry sync" => {
                    let name = format!("w4s-{round}");
                    let tree = self.linked_dataset(&name).await?;
                    let source = [tree.clone()];
                    self.ferry_sync(agent, &name, W4_SITE, &source).await?;
                    rewrite(&tree, &changed)?;
                    let (run, job) = self.ferry_sync(agent, &name, W4_SITE, &source).await?;
                    let unchanged = job.sync.map_or(0, |s| s.objects_unchanged);
                    let copied = job.objects_total - unchanged;
                    if copied != changed.len() as u64 {
                        bail!(
                            "the incremental sync copied {copied} objects, not the {} changed",
                            changed.len()
                        );
                    }
                    run
                }
                _ => {
                    let tree = self.src.join(format!("w4r-{round}"));
                    let copy = out.join(format!("rclone-sync-{round}"));
                    link_tree(&generated, &tree)?;
                    copy_tree_keeping_times(&generated, &copy)?;
                    rewrite(&tree, &changed)?;
                    self.rclone_verb(
                        None,
                        "sync",
                        &tree.display().to_string(),
                        &copy.display().to_string(),
                        &[],
                        std::slice::from_ref(&tree),
                    )?
                }
            };
            results.add(&format!("W4 incremental {who}"), round, run);
        }
        Ok(())
    }
}

impl Bench {
    /// Dataset `name` on site `local`, its tree (returned) linked from `gen/w4`.
    async fn linked_dataset(&self, name: &str) -> anyhow::Result<PathBuf> {
        let tree = self.src.join(name);
        link_tree(&self.gen.join("w4"), &tree)?;
        self.client
            .create_dataset(pb::Dataset {
                name: name.into(),
                site: "local".into(),
                path: name.into(),
                ..Default::default()
            })
            .await?;
        Ok(tree)
    }
}

/// Every hundredth of `files` generated keys: the 1% an incremental run finds changed.
pub(crate) fn changed_keys(files: usize) -> Vec<String> {
    (0..files).step_by(100).map(generated_key).collect()
}

/// Rewrites `keys` below `tree` with other bytes of the same size, through a new file
/// renamed over the old: the tree's files are hard links to the generated ones, which
/// must stay as they are.
fn rewrite(tree: &Path, keys: &[String]) -> anyhow::Result<()> {
    for key in keys {
        let path = tree.join(key);
        let flipped: Vec<u8> = std::fs::read(&path)?.iter().map(|b| !b).collect();
        let fresh = path.with_extension("new");
        std::fs::write(&fresh, flipped)?;
        std::fs::rename(&fresh, &path)?;
    }
    Ok(())
}

/// `cp -a from to`: a copy whose files keep their modification times.
fn copy_tree_keeping_times(from: &Path, to: &Path) -> anyhow::Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("running cp -a")?;
    if !status.success() {
        bail!("cp -a {} {} failed: {status}", from.display(), to.display());
    }
    Ok(())
}

/// The W4 destination site, a directory of its own.
pub(crate) const W4_SITE: &str = "local-out";

/// `cp -r from to`, timed like the others (its CPU time not sampled).
fn copy_tree(from: &Path, to: &Path) -> anyhow::Result<Run> {
    settle(&[from.to_owned()])?;
    let started = Instant::now();
    let status = Command::new("cp")
        .arg("-r")
        .arg(from)
        .arg(to)
        .status()
        .context("running cp -r")?;
    if !status.success() {
        bail!("cp -r {} {} failed: {status}", from.display(), to.display());
    }
    Ok(Run {
        seconds: started.elapsed().as_secs_f64(),
        cpu_seconds: 0.0,
        peak_rss_kib: 0,
        server_cpu_seconds: 0.0,
        steal_seconds: 0.0,
    })
}
