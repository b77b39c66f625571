// The per-object report of a job as CSV, read page by page through ListJobObjects so
// that a job of any size is never held in one answer. One row per object: what a
// person checks after a migration (status, checksums at both ends, each failure's
// operation and reason).
import type { Api } from "./api";
import { ObjectStatus, type JobObject } from "./gen/ferry/v1/job_pb";
import { enumLabel } from "./format";

const COLUMNS = [
  "key",
  "size_bytes",
  "status",
  "attempts",
  "task",
  "operation",
  "error",
  "source_xxh3",
  "destination_xxh3",
];

/** RFC 4180: quote a field holding a comma, quote or line break; double its quotes. */
export function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function csvRow(o: JobObject): string {
  return [
    o.key,
    o.size.toString(),
    o.status === ObjectStatus.UNSPECIFIED ? "" : enumLabel(ObjectStatus, o.status),
    String(o.attempts),
    o.task,
    o.operation,
    o.error,
    o.sourceXxh3,
    o.destinationXxh3,
  ]
    .map(csvField)
    .join(",");
}

/** Every object of the job as CSV text; `progress` hears the count after each page. */
export async function jobObjectsCsv(
  api: Api,
  job: string,
  progress: (objects: number) => void,
  signal: AbortSignal,
): Promise<string> {
  const lines = [COLUMNS.join(",")];
  let pageToken = "";
  do {
    const page = await api.jobs.listJobObjects({ job, pageSize: 1000, pageToken }, { signal });
    for (const o of page.objects) lines.push(csvRow(o));
    progress(lines.length - 1);
    pageToken = page.nextPageToken;
  } while (pageToken !== "");
  return lines.join("\r\n") + "\r\n";
}

/** Hands a file to the browser's download, named `filename`. */
export function saveFile(contents: string, type: string, filename: string): void {
  const url = URL.createObjectURL(new Blob([contents], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.hidden = true;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
