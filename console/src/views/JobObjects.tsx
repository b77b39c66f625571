// A job's objects, a page at a time, filtered by status, with each failure's operation
// and reason; and the whole list as a CSV report.
import { useRef, useState } from "preact/hooks";
import { useApi } from "../api";
import { Empty, ErrorNote } from "../components/feedback";
import { Pager } from "../components/Pager";
import { isAbort } from "../errors";
import { ObjectStatus, type Job } from "../gen/ferry/v1/job_pb";
import { enumLabel, formatBytes, formatCount } from "../format";
import { usePages } from "../hooks";
import { jobObjectsCsv, saveFile } from "../report";

const PAGE_SIZE = 100;
const STATUSES = [
  ObjectStatus.PENDING,
  ObjectStatus.COPYING,
  ObjectStatus.COPIED,
  ObjectStatus.VERIFIED,
  ObjectStatus.SKIPPED,
  ObjectStatus.FAILED,
];

export function JobObjects({ job }: { job: Job }) {
  const api = useApi();
  const [status, setStatus] = useState(ObjectStatus.UNSPECIFIED);
  const pages = usePages(
    async (pageToken, signal) => {
      const res = await api.jobs.listJobObjects({ job: job.id, status, pageSize: PAGE_SIZE, pageToken }, { signal });
      return { items: res.objects, next: res.nextPageToken };
    },
    // Listed again at each change of the job's state, so the table a user watches
    // fills in as the migration moves on and is whole once it ends.
    [job.id, status, job.state],
  );
  const objects = pages.data ?? [];

  return (
    <>
      <div class="title-row">
        <h2>Objects</h2>
        <ReportButton job={job} />
      </div>
      <div class="filters">
        <div class="field">
          <label for="objects-status">Status</label>
          <select
            id="objects-status"
            value={String(status)}
            onChange={(e) => setStatus(Number(e.currentTarget.value) as ObjectStatus)}
          >
            <option value={String(ObjectStatus.UNSPECIFIED)}>Any status</option>
            {STATUSES.map((s) => (
              <option key={s} value={String(s)}>
                {enumLabel(ObjectStatus, s)}
              </option>
            ))}
          </select>
        </div>
        <div class="actions">
          <button type="button" onClick={pages.reload} disabled={pages.loading}>
            Refresh objects
          </button>
        </div>
      </div>
      <ErrorNote error={pages.error} context="Objects could not be listed" />
      {pages.data && objects.length === 0 && (
        <Empty>
          {status === ObjectStatus.UNSPECIFIED
            ? "No object listed yet."
            : `No ${enumLabel(ObjectStatus, status)} object.`}
        </Empty>
      )}
      {objects.length > 0 && (
        <table aria-busy={pages.loading}>
          <caption class="sr-only">Objects of the migration</caption>
          <thead>
            <tr>
              <th scope="col">Key</th>
              <th scope="col" class="num">
                Size
              </th>
              <th scope="col">Status</th>
              <th scope="col" class="num">
                Attempts
              </th>
              <th scope="col">Task</th>
              <th scope="col">Failure</th>
            </tr>
          </thead>
          <tbody>
            {objects.map((o) => (
              <tr key={o.key}>
                <td class="mono key">{o.key}</td>
                <td class="num">{formatBytes(o.size)}</td>
                <td>
                  <span class={`badge object-${enumLabel(ObjectStatus, o.status)}`}>
                    {enumLabel(ObjectStatus, o.status)}
                  </span>
                </td>
                <td class="num">{o.attempts}</td>
                <td class="mono">{o.task}</td>
                <td class="failure">{o.error ? (o.operation ? `${o.operation}: ${o.error}` : o.error) : ""}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <Pager pages={pages} label="Objects" />
    </>
  );
}

function ReportButton({ job }: { job: Job }) {
  const api = useApi();
  const [count, setCount] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const abort = useRef<AbortController | null>(null);

  const download = async () => {
    abort.current?.abort();
    const controller = new AbortController();
    abort.current = controller;
    setError(null);
    setCount(0);
    try {
      const csv = await jobObjectsCsv(api, job.id, setCount, controller.signal);
      saveFile(csv, "text/csv;charset=utf-8", `ferry-job-${job.id}-objects.csv`);
    } catch (err) {
      if (!isAbort(err)) setError(err);
    }
    setCount(null);
  };

  return (
    <div class="report">
      <button type="button" onClick={download} disabled={count !== null}>
        {count === null ? "Download report (CSV)" : `Preparing report: ${formatCount(count)} objects…`}
      </button>
      <ErrorNote error={error} context="The report could not be made" />
    </div>
  );
}
