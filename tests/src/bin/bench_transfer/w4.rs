//! W4: many 4 KiB files from one directory tree to another (`file://` → `file://`), the
//! first copy: Ferry (quick verification) against `rclone copy` and `cp -r`, which is
//! the floor, each into a fresh directory, interleaved round by round.

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
                    link_tree(&generated, &self.src.join(&name))?;
                    self.client
                        .create_dataset(pb::Dataset {
                            name: name.clone(),
                            site: "local".into(),
                            path: name.clone(),
                            ..Default::default()
                        })
                        .await?;
                    self.ferry(
                        agent,
                        &name,
                        W4_SITE,
                        pb::VerifyMode::Quick,
                        std::slice::from_ref(&generated),
                    )
                    .await?
                }
                "cp -r" => copy_tree(&generated, &out.join(format!("cp-{round}")))?,
                _ => self.rclone(
                    &generated.display().to_string(),
                    &out.join(format!("rclone-{round}")).display().to_string(),
                    &[],
                    std::slice::from_ref(&generated),
                )?,
            };
            results.add(&format!("W4 {who}"), round, run);
        }
        // The next round writes into a file system as empty as this one found it.
        std::fs::remove_dir_all(out)?;
        std::fs::create_dir_all(out)?;
        Ok(())
    }
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
