// One migration as it runs (`#/jobs/<id>`): live progress from WatchJob, what the job
// moves and how, its recent failures, the controls an operator has, and its objects.
import { siteLabel, useDatasetNames, useSites } from "../catalogue";
import { ErrorNote, Loading } from "../components/feedback";
import { isTerminal, JobStateBadge, jobStateName } from "../components/labels";
import { describeError } from "../errors";
import { VerifyMode } from "../gen/ferry/v1/common_pb";
import type { Job, JobProgress, ObjectFilter } from "../gen/ferry/v1/job_pb";
import {
  durationSeconds,
  enumLabel,
  formatBytes,
  formatCount,
  formatLimit,
  formatRate,
  formatSeconds,
  formatTime,
} from "../format";
import { seg } from "../router";
import { useSession } from "../session";
import { useJobWatch, type WatchStatus } from "../watch";
import { JobControls } from "./JobControls";
import { JobObjects } from "./JobObjects";

export function JobActivity({ id }: { id: string }) {
  const session = useSession();
  const watch = useJobWatch(id);
  const sites = useSites();
  const job = watch.progress?.job;
  const names = useDatasetNames(job ? [job.dataset] : []);

  if (!job) {
    return (
      <section>
        <h1>Migration {id}</h1>
        {watch.error ? <ErrorNote error={watch.error} /> : <Loading what="the migration" />}
        <p>
          <a href="#/jobs">All migrations</a>
        </p>
      </section>
    );
  }
  const datasetName = names.get(job.dataset) ?? job.dataset;
  const site = (idOrName: string) => siteLabel(sites.data, idOrName);

  return (
    <section>
      <p class="crumbs">
        <a href="#/jobs">Migrations</a> /
      </p>
      <div class="title-row">
        <h1>
          Migration of <a href={`#/datasets/${seg(datasetName)}`}>{datasetName}</a> to {site(job.destinationSite)}
        </h1>
        <JobStateBadge state={job.state} />
      </div>
      <LiveProgress progress={watch.progress!} status={watch.status} error={watch.error} />
      {session.can("operate") && <JobControls job={job} onChanged={watch.apply} onRestarted={watch.restart} />}
      <h2>Details</h2>
      <dl class="details">
        <dt>Job id</dt>
        <dd class="mono">{job.id}</dd>
        <dt>From</dt>
        <dd>
          {site(job.sourceSite)}: <span class="mono">{job.sourcePath || "/"}</span>
          {job.sourceRetired && " (retired)"}
        </dd>
        <dt>To</dt>
        <dd>
          {site(job.destinationSite)}: <span class="mono">{job.destinationPath || "/"}</span>
          {job.storageClass && ` (storage class ${job.storageClass})`}
        </dd>
        <dt>Run by agents of</dt>
        <dd>{site(job.executingSite)}</dd>
        <dt>Verification</dt>
        <dd>{job.verifyMode === VerifyMode.UNSPECIFIED ? "default" : enumLabel(VerifyMode, job.verifyMode)}</dd>
        <dt>Source afterwards</dt>
        <dd>{job.retireSource ? "deleted once switched" : "kept as a secondary replica"}</dd>
        <dt>Objects taken</dt>
        <dd>{describeFilter(job.filter)}</dd>
        <dt>Bandwidth limit</dt>
        <dd>{formatLimit(job.bandwidthLimitBytesPerSec)}</dd>
        <dt>Attempt</dt>
        <dd>{job.attempt}</dd>
        <dt>Created</dt>
        <dd>{formatTime(job.createTime)}</dd>
        <dt>Started</dt>
        <dd>{formatTime(job.startTime)}</dd>
        <dt>Ended</dt>
        <dd>{formatTime(job.endTime)}</dd>
      </dl>
      <RecentErrors progress={watch.progress!} />
      <JobObjects job={job} />
    </section>
  );
}

const STATUS_TEXT: Record<WatchStatus, string> = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  ended: "Finished",
  stopped: "Not updating",
};

/** One sentence for the live region: the figures a person would read out. */
export function progressSentence(job: Job, p: JobProgress): string {
  const parts = [
    `${jobStateName(job.state)}: ${formatCount(job.objectsDone)} of ${formatCount(job.objectsTotal)} objects`,
    `${formatBytes(job.bytesDone)} of ${formatBytes(job.bytesTotal)}`,
  ];
  if (Number(job.objectsFailed) > 0) parts.push(`${formatCount(job.objectsFailed)} failed`);
  if (!isTerminal(job.state)) {
    if (p.bytesPerSec > 0) parts.push(formatRate(p.bytesPerSec));
    const eta = durationSeconds(p.eta);
    if (eta !== null) parts.push(`about ${formatSeconds(eta)} left`);
  }
  return parts.join(", ") + ".";
}

function LiveProgress({ progress, status, error }: { progress: JobProgress; status: WatchStatus; error: unknown }) {
  const job = progress.job!;
  const total = Number(job.bytesTotal);
  const eta = durationSeconds(progress.eta);
  const running = !isTerminal(job.state);
  return (
    <div class="card progress">
      <div class="progress-head">
        <span class={`live live-${status}`}>{STATUS_TEXT[status]}</span>
        {status === "reconnecting" && error ? <span class="muted"> {describeError(error)}</span> : null}
      </div>
      <progress
        class="big"
        value={Number(job.bytesDone)}
        max={Math.max(1, total)}
        aria-label="Bytes copied"
      />
      <p aria-live="polite" aria-atomic="true" class="sentence">
        {progressSentence(job, progress)}
      </p>
      <dl class="figures">
        <div>
          <dt>Objects</dt>
          <dd>
            {formatCount(job.objectsDone)} / {formatCount(job.objectsTotal)}
          </dd>
        </div>
        <div>
          <dt>Failed</dt>
          <dd>{formatCount(job.objectsFailed)}</dd>
        </div>
        <div>
          <dt>Bytes</dt>
          <dd>
            {formatBytes(job.bytesDone)} / {formatBytes(job.bytesTotal)}
          </dd>
        </div>
        <div>
          <dt>Rate</dt>
          <dd>{running ? formatRate(progress.bytesPerSec) : "—"}</dd>
        </div>
        <div>
          <dt>Time left</dt>
          <dd>{running && eta !== null ? formatSeconds(eta) : "—"}</dd>
        </div>
      </dl>
      {job.error && (
        <p class="error" role="alert">
          {job.error}
        </p>
      )}
      {status === "stopped" && <ErrorNote error={error} context="Live progress stopped" />}
    </div>
  );
}

function RecentErrors({ progress }: { progress: JobProgress }) {
  if (progress.recentErrors.length === 0) return null;
  return (
    <>
      <h2>Recent failures</h2>
      <ul class="failures">
        {progress.recentErrors.map((e, i) => (
          <li key={`${e.key}-${i}`}>
            <span class="mono">{e.key}</span>: {e.operation} failed after {e.attempts}{" "}
            {e.attempts === 1 ? "attempt" : "attempts"}: {e.message}
          </li>
        ))}
      </ul>
    </>
  );
}

/** What the filter takes, in words; "every object" without one. */
export function describeFilter(f: ObjectFilter | undefined): string {
  if (!f) return "every object";
  const parts: string[] = [];
  if (f.prefix) parts.push(`under ${f.prefix}`);
  if (f.include.length) parts.push(`matching ${f.include.join(", ")}`);
  if (f.exclude.length) parts.push(`except ${f.exclude.join(", ")}`);
  if (f.minSize > 0n) parts.push(`at least ${formatBytes(f.minSize)}`);
  if (f.maxSize > 0n) parts.push(`at most ${formatBytes(f.maxSize)}`);
  if (f.modifiedAfter) parts.push(`modified after ${formatTime(f.modifiedAfter)}`);
  if (f.modifiedBefore) parts.push(`modified before ${formatTime(f.modifiedBefore)}`);
  return parts.length ? parts.join("; ") : "every object";
}
