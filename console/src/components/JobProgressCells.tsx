// A job's progress in figures, shared by the migrations list and the overview.
import type { Job } from "../gen/ferry/v1/job_pb";
import { elapsedSeconds, formatBytes, formatCount, formatRate } from "../format";

export function ObjectsDone({ job }: { job: Job }) {
  const failed = Number(job.objectsFailed);
  return (
    <>
      <progress
        value={Number(job.objectsDone)}
        max={Math.max(1, Number(job.objectsTotal))}
        aria-label={`${formatCount(job.objectsDone)} of ${formatCount(job.objectsTotal)} objects`}
      />{" "}
      {formatCount(job.objectsDone)} / {formatCount(job.objectsTotal)}
      {failed > 0 && <span class="failed"> ({formatCount(failed)} failed)</span>}
    </>
  );
}

export function BytesDone({ job }: { job: Job }) {
  return (
    <>
      {formatBytes(job.bytesDone)} / {formatBytes(job.bytesTotal)}
    </>
  );
}

/**
 * Bytes done over the time the job has run (to its end, or now). A job's current rate
 * is only in WatchJob's progress, so lists show this average.
 */
export function averageRate(job: Job, now: Date): string {
  const seconds = elapsedSeconds(job.startTime, job.endTime, now);
  if (!seconds) return "—";
  return formatRate(Number(job.bytesDone) / seconds);
}
