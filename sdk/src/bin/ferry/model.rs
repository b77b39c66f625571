//! `ferry model`: the demand models behind forecast-driven placement — training them and
//! listing what each dataset's model learned and whether recommendations use it.

use clap::Subcommand;
use ferry_sdk::{pb, Error};

use crate::job::{all_names, view::Names};
use crate::json::{self, ToJson};
use crate::{output, Context};

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Train demand models now: one dataset's, or every dataset's
    ///
    /// Each model is back-tested on the last six days of the dataset's history against
    /// the seasonal-naive forecast and the recency heuristic, and used only where it
    /// beats both. The control plane also trains on a schedule (daily by default).
    Train {
        /// The dataset (id or name); every dataset when omitted
        dataset: Option<String>,
    },
    /// List every dataset's latest model, or one dataset's kept versions
    List {
        /// The dataset (id or name): its versions, newest first
        dataset: Option<String>,
    },
}

pub async fn run(command: ModelCommand, ctx: &Context) -> Result<String, Error> {
    let client = ctx.client().await?;
    match command {
        ModelCommand::Train { dataset } => {
            let run = client.train_models(dataset.as_deref()).await?;
            if ctx.json() {
                return Ok(json::render(&run.to_json()));
            }
            let summary = format!(
                "trained {} dataset(s) in {}; {} model(s) in use",
                run.datasets_trained,
                output::duration(run.elapsed.as_ref()),
                run.models_in_use
            );
            if run.models.is_empty() {
                return Ok(summary);
            }
            let names = all_names(client).await?;
            Ok(format!("{summary}\n\n{}", table(&run.models, &names)))
        }
        ModelCommand::List { dataset } => {
            let models = client.list_models(dataset.as_deref()).await?;
            if ctx.json() {
                return Ok(json::render(&json::array(&models)));
            }
            if models.is_empty() {
                return Ok("no models trained yet: `ferry model train` trains them".to_owned());
            }
            Ok(table(&models, &all_names(client).await?))
        }
    }
}

/// Models as a table: errors are mean absolute errors in reads per hour, the model's
/// against the seasonal-naive forecast's and the recency heuristic's.
fn table(models: &[pb::ModelInfo], names: &Names) -> String {
    let rows = models
        .iter()
        .map(|m| {
            let errors = if m.kind == "none" {
                "-".to_owned()
            } else {
                format!(
                    "{:.2} / {:.2} / {:.2}",
                    m.backtest_error, m.seasonal_naive_error, m.heuristic_error
                )
            };
            let outlook = match (&m.peak_time, m.in_use) {
                (Some(peak), true) => format!(
                    "{:.0} reads, peak {}",
                    m.expected_reads_7d,
                    output::timestamp(Some(peak))
                ),
                (None, true) => format!("{:.0} reads", m.expected_reads_7d),
                _ => "-".to_owned(),
            };
            vec![
                names.dataset(&m.dataset),
                m.version.clone(),
                output::yes_no(m.in_use).to_owned(),
                errors,
                outlook,
                m.note.clone(),
            ]
        })
        .collect();
    output::table(
        &[
            "DATASET",
            "VERSION",
            "IN USE",
            "ERROR MODEL / WEEK AGO / LAST DAY",
            "NEXT 7 DAYS",
            "NOTE",
        ],
        rows,
    )
}
