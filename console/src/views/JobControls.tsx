// What an operator may do to a job: cancel it while it runs, retry it once it failed
// or was cancelled, and change its bandwidth limit while it runs. Each answer (the
// job as it now is) shows at once; the live stream follows.
import { useState } from "preact/hooks";
import { useApi } from "../api";
import { ErrorNote } from "../components/feedback";
import { isTerminal } from "../components/labels";
import { JobState, type Job } from "../gen/ferry/v1/job_pb";
import { formatLimit, parseRate } from "../format";

export function JobControls({
  job,
  onChanged,
  onRestarted,
}: {
  job: Job;
  onChanged(job: Job): void;
  onRestarted(): void;
}) {
  const api = useApi();
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [confirming, setConfirming] = useState(false);
  const [limit, setLimit] = useState("");
  const [done, setDone] = useState("");

  const run = async (action: () => Promise<Job>, after?: (job: Job) => void) => {
    setBusy(true);
    setError(null);
    setDone("");
    try {
      const updated = await action();
      onChanged(updated);
      after?.(updated);
    } catch (err) {
      setError(err);
    }
    setBusy(false);
  };

  const running = !isTerminal(job.state);
  const retryable = job.state === JobState.FAILED || job.state === JobState.CANCELLED;

  const setBandwidth = (e: Event) => {
    e.preventDefault();
    let value: bigint;
    try {
      value = parseRate(limit);
    } catch (err) {
      setError(err);
      return;
    }
    run(
      () => api.jobs.updateJob({ job: job.id, bandwidthLimitBytesPerSec: value }),
      (j) => {
        setLimit("");
        setDone(`Bandwidth limit now ${formatLimit(j.bandwidthLimitBytesPerSec)}.`);
      },
    );
  };

  if (!running && !retryable) return null;
  return (
    <div class="card controls">
      <h2 class="sr-only">Actions</h2>
      {running && !confirming && (
        <button type="button" class="danger" disabled={busy} onClick={() => setConfirming(true)}>
          Cancel migration
        </button>
      )}
      {running && confirming && (
        <div role="group" aria-label="Confirm cancellation" class="confirm">
          <span>Stop copying? Objects copied so far stay; the dataset stays where it is.</span>
          <button
            type="button"
            class="danger"
            disabled={busy}
            onClick={() => run(() => api.jobs.cancelJob({ job: job.id }), () => setConfirming(false))}
          >
            Yes, cancel it
          </button>
          <button type="button" disabled={busy} onClick={() => setConfirming(false)}>
            Keep it running
          </button>
        </div>
      )}
      {retryable && (
        <button
          type="button"
          class="primary"
          disabled={busy}
          onClick={() => run(() => api.jobs.retryJob({ job: job.id }), () => onRestarted())}
        >
          Retry migration
        </button>
      )}
      {running && (
        <form class="inline" onSubmit={setBandwidth}>
          <label for="job-limit">New bandwidth limit</label>
          <input
            id="job-limit"
            value={limit}
            placeholder="e.g. 50MB/s, 0 for none"
            onInput={(e) => setLimit(e.currentTarget.value)}
            aria-describedby="job-limit-help"
          />
          <button type="submit" disabled={busy || limit.trim() === ""}>
            Set limit
          </button>
          <span id="job-limit-help" class="help">
            Now {formatLimit(job.bandwidthLimitBytesPerSec)}. Agents follow within two seconds.
          </span>
        </form>
      )}
      {done && (
        <p role="status" class="ok">
          {done}
        </p>
      )}
      <ErrorNote error={error} />
    </div>
  );
}
