//! One benchmark run of each contender: Ferry through a real control plane and agent,
//! rclone as a process; and one round of each S3 workload on one server.

use super::*;

pub(crate) struct Bench {
    pub(crate) client: Client,
    pub(crate) gen: PathBuf,
    pub(crate) src: PathBuf,
}

/// One S3 server's part of the benchmark: the server, Ferry's two sites on it (W1's
/// and W2's destination, which is W3's source, and W3's destination), the agent of
/// the first, which runs W3, and the runs so far.
pub(crate) struct Endpoint {
    pub(crate) server: Server,
    pub(crate) site: String,
    pub(crate) copy_site: String,
    pub(crate) agent: Agent,
    pub(crate) w1: Results,
    pub(crate) w2: Results,
    pub(crate) w3: Results,
}

impl Bench {
    /// A migration of `dataset` to site `to`, timed from the plan to its end.
    pub(crate) async fn ferry(
        &self,
        agent: &Agent,
        dataset: &str,
        to: &str,
        verify: pb::VerifyMode,
        source: &[PathBuf],
        server: Option<&Server>,
    ) -> anyhow::Result<Run> {
        let plan = async {
            self.client
                .plan_migration(pb::PlanMigrationRequest {
                    dataset: dataset.into(),
                    destination_site: to.into(),
                    verify_mode: verify.into(),
                    idempotency_key: format!("bench-{dataset}-{to}"),
                    ..Default::default()
                })
                .await?
                .job
                .context("a planned job")
        };
        let (run, _) = self.timed(agent, dataset, source, server, plan).await?;
        Ok(run)
    }

    /// A sync of `dataset` to site `to` (quick verification), timed from the plan to
    /// its end; the completed job comes back with its figures.
    pub(crate) async fn ferry_sync(
        &self,
        agent: &Agent,
        dataset: &str,
        to: &str,
        source: &[PathBuf],
    ) -> anyhow::Result<(Run, pb::Job)> {
        let plan = async {
            self.client
                .plan_sync(pb::PlanSyncRequest {
                    dataset: dataset.into(),
                    destination_site: to.into(),
                    verify_mode: pb::VerifyMode::Quick.into(),
                    ..Default::default()
                })
                .await?
                .job
                .context("a planned job")
        };
        self.timed(agent, dataset, source, None, plan).await
    }

    /// Runs the job `plan` plans, with `source` settled first, and measures it, the
    /// agent that runs it and `server`, if it involves one; fails unless the job
    /// completed.
    async fn timed(
        &self,
        agent: &Agent,
        dataset: &str,
        source: &[PathBuf],
        server: Option<&Server>,
        plan: impl std::future::Future<Output = anyhow::Result<pb::Job>>,
    ) -> anyhow::Result<(Run, pb::Job)> {
        let pid = agent.pid().context("the agent is not running")?;
        settle(source)?;
        reset_peak_rss(pid);
        let (cpu_before, _) = proc_usage(pid).context("reading the agent's usage")?;
        let server_before = server_cpu(server);
        let steal_before = machine_steal();
        let started = Instant::now();
        let job = plan.await?;
        let done = loop {
            let j = self.client.get_job(&job.id).await?;
            if matches!(
                pb::JobState::try_from(j.state),
                Ok(pb::JobState::Completed | pb::JobState::Failed | pb::JobState::Cancelled)
            ) {
                break j;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let seconds = started.elapsed().as_secs_f64();
        if done.state != pb::JobState::Completed as i32 {
            bail!(
                "job {} of {dataset} did not complete: {}",
                job.id,
                done.error
            );
        }
        let (cpu_after, peak_rss_kib) = proc_usage(pid).context("reading the agent's usage")?;
        let run = Run {
            seconds,
            cpu_seconds: cpu_after - cpu_before,
            peak_rss_kib,
            server_cpu_seconds: server_cpu(server) - server_before,
            steal_seconds: machine_steal() - steal_before,
        };
        Ok((run, done))
    }

    /// `rclone copy from to`, timed and measured; `bench:` is `server`'s remote.
    pub(crate) fn rclone(
        &self,
        server: Option<&Server>,
        from: &str,
        to: &str,
        extra: &[&str],
        source: &[PathBuf],
    ) -> anyhow::Result<Run> {
        self.rclone_verb(server, "copy", from, to, extra, source)
    }

    /// `rclone <verb> from to` (`copy`, `sync`), timed and measured; `bench:` is
    /// `server`'s remote.
    pub(crate) fn rclone_verb(
        &self,
        server: Option<&Server>,
        verb: &str,
        from: &str,
        to: &str,
        extra: &[&str],
        source: &[PathBuf],
    ) -> anyhow::Result<Run> {
        settle(source)?;
        let server_before = server_cpu(server);
        let steal_before = machine_steal();
        let started = Instant::now();
        let mut command = Command::new("rclone");
        command.args([verb, from, to]).args(extra);
        // FERRY_BENCH_RCLONE_LOG=FILE keeps rclone's debug log, to see what it did.
        if let Some(log) = std::env::var_os("FERRY_BENCH_RCLONE_LOG") {
            command.arg("-vv").arg("--log-file").arg(log);
        }
        if let Some(server) = server {
            command.envs(server.rclone_env());
        }
        let mut child = command
            // rclone 1.60 fails against a plain-HTTP endpoint with this set.
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting rclone")?;
        let pid = child.id();
        let mut last = (0.0, 0);
        let status = loop {
            if let Some(usage) = proc_usage(pid) {
                last = usage;
            }
            if let Some(status) = child.try_wait()? {
                break status;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let seconds = started.elapsed().as_secs_f64();
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            bail!("rclone {verb} {from} {to} failed: {err}");
        }
        Ok(Run {
            seconds,
            cpu_seconds: last.0,
            peak_rss_kib: last.1,
            server_cpu_seconds: server_cpu(server) - server_before,
            steal_seconds: machine_steal() - steal_before,
        })
    }
}

impl Bench {
    /// One round of a generated `workload` (`w1`, `w2`) from files to `to`'s server,
    /// each of `contenders` in this round's turn: Ferry through the agent of its
    /// variant's site, each run from its own hard-linked copy of the files (a dataset's
    /// path is its own), and rclone.
    pub(crate) async fn files_to_s3(
        &self,
        to: &mut Endpoint,
        workload: &str,
        round: usize,
        agents: &HashMap<&str, &Agent>,
        contenders: Vec<Contender>,
    ) -> anyhow::Result<()> {
        let label = workload.to_uppercase();
        let server = Some(&to.server);
        let results = if workload == "w1" {
            &mut to.w1
        } else {
            &mut to.w2
        };
        for contender in in_turn(contenders, round) {
            match contender {
                Contender::Ferry(variant) => {
                    let name = format!("{}{workload}-{}-{round}", to.server.prefix(), variant.name);
                    link_tree(&self.gen.join(workload), &self.src.join(&name))?;
                    self.client
                        .create_dataset(pb::Dataset {
                            name: name.clone(),
                            site: variant.site.into(),
                            path: name.clone(),
                            ..Default::default()
                        })
                        .await?;
                    let agent = agents
                        .get(variant.site)
                        .with_context(|| format!("no agent for site {}", variant.site))?;
                    let source = [self.gen.join(workload)];
                    let run = self
                        .ferry(agent, &name, &to.site, variant.verify, &source, server)
                        .await?;
                    results.add(&format!("{label} ferry {}", variant.name), round, run);
                }
                Contender::Rclone(variant, flags) => {
                    let from = self.gen.join(workload).display().to_string();
                    let dest = format!("bench:rclone/{workload}-{variant}-{round}");
                    let source = [self.gen.join(workload)];
                    let run = self.rclone(server, &from, &dest, flags, &source)?;
                    results.add(&format!("{label} rclone {variant}"), round, run);
                }
            }
        }
        Ok(())
    }

    /// One round of W3 on `on`'s server: this round's W1 copies, bucket to bucket. Ferry
    /// copies the dataset its own W1 run of the same mode wrote; rclone the one Ferry's
    /// quick run wrote, server-side.
    pub(crate) async fn w3_round(
        &self,
        on: &mut Endpoint,
        round: usize,
        contenders: Vec<Contender>,
    ) -> anyhow::Result<()> {
        let server = &on.server;
        for contender in in_turn(contenders, round) {
            match contender {
                Contender::Ferry(FerryVariant {
                    name: mode, verify, ..
                }) => {
                    let name = format!("{}w1-{mode}-{round}", server.prefix());
                    let source = server.stored(&format!("bench/ferry/{name}"))?;
                    let run = self
                        .ferry(
                            &on.agent,
                            &name,
                            &on.copy_site,
                            verify,
                            &source,
                            Some(server),
                        )
                        .await?;
                    on.w3.add(&format!("W3 ferry {mode}"), round, run);
                }
                Contender::Rclone(variant, flags) => {
                    let from = format!("bench/ferry/{}w1-quick-{round}", server.prefix());
                    let run = self.rclone(
                        Some(server),
                        &format!("bench:{from}"),
                        &format!("bench:rclone/w3-{round}"),
                        flags,
                        &server.stored(&from)?,
                    )?;
                    on.w3.add(&format!("W3 rclone {variant}"), round, run);
                }
            }
        }
        Ok(())
    }
}
