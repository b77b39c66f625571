// Live progress of one job from WatchJob, a server stream: one message at once, then
// one per change, until the job ends. A stream that ends (or breaks) while the job is
// still running is opened again, waiting 1 s, then 2 s, up to 15 s between tries;
// nothing is polled. A job that cannot be watched at all (not found, not allowed)
// stops the loop with the server's message.
import { Code } from "@connectrpc/connect";
import { useEffect, useState } from "preact/hooks";
import { useApi } from "./api";
import { isTerminal } from "./components/labels";
import { isAbort, isCode } from "./errors";
import type { Job, JobProgress } from "./gen/ferry/v1/job_pb";

export type WatchStatus = "connecting" | "live" | "reconnecting" | "ended" | "stopped";

export interface JobWatch {
  progress: JobProgress | null;
  /** The last failure; cleared by the next message. */
  error: unknown;
  status: WatchStatus;
  /** Shows a job an action returned at once, before the stream reports it. */
  apply(job: Job): void;
  /** Opens the stream again (after a retry restarted an ended job). */
  restart(): void;
}

const FIRST_DELAY_MS = 1000;
const MAX_DELAY_MS = 15_000;
const FINAL = [Code.NotFound, Code.PermissionDenied, Code.InvalidArgument, Code.Unauthenticated];

export function useJobWatch(id: string): JobWatch {
  const api = useApi();
  const [progress, setProgress] = useState<JobProgress | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [status, setStatus] = useState<WatchStatus>("connecting");
  const [generation, setGeneration] = useState(0);

  useEffect(() => {
    const abort = new AbortController();
    const { signal } = abort;
    let delay = FIRST_DELAY_MS;
    let lastJob: Job | undefined;
    (async () => {
      while (!signal.aborted) {
        let messages = 0;
        try {
          for await (const p of api.jobs.watchJob({ job: id }, { signal })) {
            messages += 1;
            // A stream that keeps delivering changes is healthy: the next break
            // starts again from the shortest wait.
            if (messages > 1) delay = FIRST_DELAY_MS;
            lastJob = p.job ?? lastJob;
            setProgress(p);
            setError(null);
            setStatus("live");
          }
          if (lastJob && isTerminal(lastJob.state)) {
            setStatus("ended");
            return;
          }
        } catch (err) {
          if (signal.aborted || isAbort(err)) return;
          setError(err);
          if (FINAL.some((code) => isCode(err, code))) {
            setStatus("stopped");
            return;
          }
        }
        setStatus("reconnecting");
        await sleep(delay, signal);
        delay = Math.min(delay * 2, MAX_DELAY_MS);
      }
    })();
    return () => abort.abort();
  }, [id, generation]);

  return {
    progress,
    error,
    status,
    apply: (job) => setProgress((p) => ({ ...(p ?? emptyProgress()), job })),
    restart: () => {
      setStatus("connecting");
      setGeneration((g) => g + 1);
    },
  };
}

function emptyProgress(): JobProgress {
  return { $typeName: "ferry.v1.JobProgress", bytesPerSec: 0, recentErrors: [] };
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
