//! Training demand models: on demand for one dataset or all, and on a schedule. Fitting
//! is CPU work, so it runs on the blocking pool, one batch per core; a dataset whose
//! fit panics gets a model saying so and the run goes on with the others.

use std::{panic::AssertUnwindSafe, time::Duration};

use chrono::{DateTime, TimeDelta, Utc};
use tracing::{info, warn};

use super::Catalogue;
use crate::{
    domain::{
        access::{hour_of, HourlyAccess},
        dataset::{Dataset, DatasetFilter},
        forecast::{self, Model, ModelKind, TRAIN_DAYS},
        ids::DatasetId,
        name::Ref,
        page::{Page, PageRequest, MAX_PAGE_SIZE},
    },
    error::{Error, Result},
    metrics,
};

/// What a training run did.
#[derive(Debug, Default)]
pub struct TrainingRun {
    pub datasets: usize,
    pub in_use: usize,
    /// Each dataset's model, while there are at most [`MAX_PAGE_SIZE`] of them; beyond
    /// that the models are listed with `ListModels`.
    pub models: Vec<Model>,
    pub elapsed: Duration,
}

#[derive(Clone)]
pub struct Training {
    catalogue: Catalogue,
}

type History = Vec<(DateTime<Utc>, HourlyAccess)>;

/// How often the schedule checks whether a training run is due.
const POLL: Duration = Duration::from_secs(60);

impl Training {
    pub fn new(catalogue: Catalogue) -> Self {
        Training { catalogue }
    }

    /// The catalogue's time, which outlooks are computed from.
    pub fn now(&self) -> DateTime<Utc> {
        self.catalogue.clock().now()
    }

    /// Trains the named dataset's model, or every dataset's.
    pub async fn train(&self, dataset: Option<&Ref<DatasetId>>) -> Result<TrainingRun> {
        let started = std::time::Instant::now();
        let now = self.catalogue.clock().now();
        let mut run = TrainingRun::default();
        if let Some(r) = dataset {
            let d = self.catalogue.get_dataset(r).await?;
            crate::call::set_target(format!("dataset:{}", d.name));
            self.train_batch(&[d], now, &mut run).await?;
        } else {
            let mut page = PageRequest::first(MAX_PAGE_SIZE);
            loop {
                let datasets = self
                    .catalogue
                    .list_datasets(&DatasetFilter::default(), &page)
                    .await?;
                self.train_batch(&datasets.items, now, &mut run).await?;
                if datasets.next_token.is_empty() {
                    break;
                }
                page = PageRequest::parse(MAX_PAGE_SIZE as i32, &datasets.next_token)?;
            }
        }
        if run.datasets > MAX_PAGE_SIZE as usize {
            run.models.clear();
        }
        run.elapsed = started.elapsed();
        info!(
            datasets = run.datasets,
            in_use = run.in_use,
            elapsed_ms = run.elapsed.as_millis() as u64,
            "demand models trained"
        );
        Ok(run)
    }

    async fn train_batch(
        &self,
        datasets: &[Dataset],
        now: DateTime<Utc>,
        run: &mut TrainingRun,
    ) -> Result<()> {
        let store = self.catalogue.store();
        let from = hour_of(now) - TimeDelta::days(TRAIN_DAYS);
        let mut work: Vec<(DatasetId, History)> = Vec::with_capacity(datasets.len());
        for d in datasets {
            work.push((d.id, store.access_stats(d.id, Some(from), None).await?));
        }
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_task = work.len().div_ceil(cores).max(1);
        let mut tasks = Vec::new();
        while !work.is_empty() {
            let batch: Vec<_> = work.drain(..per_task.min(work.len())).collect();
            tasks.push(tokio::task::spawn_blocking(move || {
                batch
                    .into_iter()
                    .map(|(id, history)| train_guarded(id, &history, now))
                    .collect::<Vec<_>>()
            }));
        }
        let mut models = Vec::with_capacity(datasets.len());
        for task in tasks {
            models.extend(
                task.await
                    .map_err(|e| Error::Internal(format!("training task: {e}")))?,
            );
        }
        store.save_models(&models).await?;
        metrics::MODELS_TRAINED.inc_by(models.len() as u64);
        run.datasets += models.len();
        run.in_use += models.iter().filter(|m| m.in_use).count();
        if run.models.len() <= MAX_PAGE_SIZE as usize {
            run.models.extend(models);
        }
        Ok(())
    }

    /// Every dataset's latest model, or the named dataset's kept versions.
    pub async fn list(
        &self,
        dataset: Option<&Ref<DatasetId>>,
        page: &PageRequest,
    ) -> Result<Page<Model>> {
        let store = self.catalogue.store();
        match dataset {
            Some(r) => {
                let d = self.catalogue.get_dataset(r).await?;
                Ok(Page {
                    items: store.model_versions(d.id).await?,
                    next_token: String::new(),
                })
            }
            None => store.latest_models(page).await,
        }
    }
}

/// Trains one dataset; a panic in the fitting library becomes the model's note.
fn train_guarded(id: DatasetId, history: &History, now: DateTime<Utc>) -> Model {
    std::panic::catch_unwind(AssertUnwindSafe(|| forecast::train(id, history, now))).unwrap_or_else(
        |panic| {
            let what = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "no message".into());
            warn!(dataset_id = %id, panic = what, "training a demand model panicked");
            Model {
                dataset_id: id,
                version: forecast::version(ModelKind::None, now),
                kind: ModelKind::None,
                periods: Vec::new(),
                errors: None,
                in_use: false,
                note: format!("training failed ({what}): the recency rules decide"),
                history_hours: 0,
                trained_at: now,
                forecast: None,
            }
        },
    )
}

/// Trains every dataset's model once `interval` has passed, on the catalogue's clock,
/// since the last training run recorded in the catalogue (or since start, on a catalogue
/// never trained): restarts neither skip nor repeat a run.
pub async fn run(training: Training, interval: Duration) {
    let clock = training.catalogue.clock().clone();
    let started = clock.now();
    let interval = TimeDelta::from_std(interval).unwrap_or(TimeDelta::days(1));
    let poll = interval.to_std().unwrap_or_default().min(POLL);
    let mut tick = tokio::time::interval(poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let last = match training.catalogue.store().last_training().await {
            Ok(last) => last.unwrap_or(started),
            Err(e) => {
                warn!(error = %e, "reading when models were last trained");
                continue;
            }
        };
        if clock.now() - last < interval {
            continue;
        }
        let call = crate::call::Call::new(
            crate::domain::principal::Principal::system("training"),
            "training",
            clock.now(),
        );
        if let Err(e) = call.scope(training.train(None)).await {
            warn!(error = %e, "scheduled training failed");
        }
    }
}
