import "./setup";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { JobObjectSchema, JobState, ObjectStatus } from "../src/gen/ferry/v1/job_pb";
import { jobObjectsCsv } from "../src/report";
import { createApi } from "../src/api";
import { catalogue, renderConsole, reset } from "./harness";

afterEach(reset);

function liveRegion(): HTMLElement {
  return document.querySelector('[aria-live="polite"].sentence') as HTMLElement;
}

test("progress arrives from WatchJob as it happens, with rate and time left, up to the end", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs/job-1", "viewer-secret");
  await screen.findByText(/copying: 10 of 25 objects/);
  cp.progress("job-1", { objectsDone: 20n, bytesDone: 3n * 1024n ** 3n }, 50 * 1024 * 1024, 20);
  await waitFor(() =>
    assert.equal(liveRegion().textContent, "copying: 20 of 25 objects, 3.00 GiB of 4.00 GiB, 50.0 MiB/s, about 20s left."),
  );
  cp.progress("job-1", { state: JobState.COMPLETED, objectsDone: 25n, bytesDone: 4n * 1024n ** 3n });
  await waitFor(() => assert.equal(liveRegion().textContent, "completed: 25 of 25 objects, 4.00 GiB of 4.00 GiB."));
  await screen.findByText("Finished");
});

test("an operator cancels after confirming, and can then retry", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs/job-1", "operator-secret");
  fireEvent.click(await screen.findByRole("button", { name: "Cancel migration" }));
  fireEvent.click(screen.getByRole("button", { name: "Yes, cancel it" }));
  await screen.findByText(/^cancelled: 10 of 25 objects/);
  assert.equal(cp.world.jobs[0].state, JobState.CANCELLED);
  assert.equal(screen.queryByRole("button", { name: "Cancel migration" }), null);
  fireEvent.click(screen.getByRole("button", { name: "Retry migration" }));
  await screen.findByText(/^queued: 10 of 25 objects/);
  cp.progress("job-1", { state: JobState.COPYING, objectsDone: 12n });
  await screen.findByText(/^copying: 12 of 25 objects/);
});

test("the bandwidth limit changes while the job runs; a malformed one is refused before asking", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs/job-1", "operator-secret");
  const field = await screen.findByLabelText("New bandwidth limit");
  fireEvent.input(field, { target: { value: "fast please" } });
  fireEvent.click(screen.getByRole("button", { name: "Set limit" }));
  await screen.findByText(/is not a rate/);
  fireEvent.input(field, { target: { value: "50MB/s" } });
  fireEvent.click(screen.getByRole("button", { name: "Set limit" }));
  await screen.findByText("Bandwidth limit now 47.7 MiB/s.");
  assert.equal(cp.world.jobs[0].bandwidthLimitBytesPerSec, 50_000_000n);
});

test("objects are filtered by status and each failure shows its operation and reason", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs/job-1", "viewer-secret");
  await screen.findByText("raw/a.bam");
  fireEvent.change(screen.getByLabelText("Status"), { target: { value: String(ObjectStatus.FAILED) } });
  await waitFor(() => assert.ok(!screen.queryByText("raw/a.bam"), "a verified object is still shown"));
  screen.getByText("raw/b.bam");
  screen.getByText("read: read: permission denied: 403 AccessDenied");
});

test("a job that does not exist says so", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs/job-404", "viewer-secret");
  await screen.findByText("Not found: job job-404 not found");
});

test("the CSV report pages through every object and quotes what needs quoting", async () => {
  const cp = catalogue();
  const objects = [];
  for (let i = 0; i < 2500; i++) {
    objects.push(create(JobObjectSchema, { key: `k/${i}`, size: BigInt(i), status: ObjectStatus.VERIFIED, attempts: 1 }));
  }
  objects.push(
    create(JobObjectSchema, { key: 'odd, "name"', size: 1n, status: ObjectStatus.FAILED, error: "read: denied" }),
  );
  cp.world.objects.set("job-1", objects);
  sessionStorage.setItem("ferry.console.token", "viewer-secret");
  const api = createApi(cp.connect({ token: () => "viewer-secret", refused: () => {} }));
  const seen: number[] = [];
  const csv = await jobObjectsCsv(api, "job-1", (n) => seen.push(n), new AbortController().signal);
  const lines = csv.trimEnd().split("\r\n");
  assert.equal(lines.length, 1 + 2501);
  assert.equal(lines[0], "key,size_bytes,status,attempts,task,operation,error,source_xxh3,destination_xxh3");
  assert.equal(lines[1], "k/0,0,verified,1,,,,,");
  assert.equal(lines[2501], '"odd, ""name""",1,failed,0,,,read: denied,,');
  assert.deepEqual(seen, [1000, 2000, 2501]);
  assert.equal(cp.world.calls.filter((c) => c === "JobService/ListJobObjects").length, 3);
});

test("the report button hands the browser a CSV file", async () => {
  const cp = catalogue();
  const saved: Blob[] = [];
  const original = URL.createObjectURL;
  URL.createObjectURL = (blob: Blob) => {
    saved.push(blob);
    return "blob:report";
  };
  try {
    renderConsole(cp, "#/jobs/job-1", "viewer-secret");
    fireEvent.click(await screen.findByRole("button", { name: "Download report (CSV)" }));
    await waitFor(() => assert.equal(saved.length, 1));
    const text = await saved[0].text();
    assert.match(text, /^key,size_bytes,status/);
    assert.match(text, /raw\/b\.bam,2048,failed,3,,read,read: permission denied: 403 AccessDenied,,/);
  } finally {
    URL.createObjectURL = original;
  }
});
