import "./setup";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { JobObjectSchema } from "../src/gen/ferry/v1/job_pb";
import { catalogue, renderConsole, reset } from "./harness";

afterEach(reset);

function withPlannableObjects() {
  const cp = catalogue();
  cp.world.objects.set("plan:d-genome", [
    create(JobObjectSchema, { key: "raw/a.bam", size: 3n * 1024n * 1024n }),
    create(JobObjectSchema, { key: "raw/b.bam", size: 1024n * 1024n }),
    create(JobObjectSchema, { key: "ref/genome.fa", size: 10n }),
  ]);
  return cp;
}

async function chooseDestination() {
  await screen.findByRole("option", { name: "vault (cold)" });
  fireEvent.change(screen.getByLabelText("Destination site"), { target: { value: "vault" } });
}

test("a dry run counts what would move under the filters, then Start opens the new job", async () => {
  const cp = withPlannableObjects();
  renderConsole(cp, "#/jobs/new?dataset=genome", "operator-secret");
  await chooseDestination();
  fireEvent.input(screen.getByLabelText("Prefix"), { target: { value: "raw/" } });
  fireEvent.click(screen.getByRole("button", { name: "Dry run" }));
  await screen.findByText(/2 objects \(4\.00 MiB\) would move, for an estimated \$0\.42/);
  fireEvent.click(screen.getByRole("button", { name: "Start migration" }));
  await waitFor(() => assert.equal(location.hash, "#/jobs/job-2"));
  const job = cp.world.jobs[0];
  assert.equal(job.filter?.prefix, "raw/");
  assert.match(job.idempotencyKey, /^console-[0-9a-f]{32}$/);
});

test("the server's INVALID_ARGUMENT is shown next to the field it names", async () => {
  const cp = withPlannableObjects();
  renderConsole(cp, "#/jobs/new?dataset=genome", "operator-secret");
  await chooseDestination();
  fireEvent.input(screen.getByLabelText("Include globs"), { target: { value: "raw/[ab" } });
  fireEvent.click(screen.getByRole("button", { name: "Start migration" }));
  await screen.findByText("'raw/[ab' is not a glob: unclosed character class");
  const field = screen.getByLabelText("Include globs");
  assert.equal(field.getAttribute("aria-invalid"), "true");
  assert.match(screen.getByRole("alert").textContent!, /The control plane refused the plan/);
  assert.equal(cp.world.jobs.length, 1);
});

test("sizes the form cannot read are flagged before anything is sent", async () => {
  const cp = withPlannableObjects();
  renderConsole(cp, "#/jobs/new", "operator-secret");
  await chooseDestination();
  fireEvent.input(screen.getByLabelText("Minimum size"), { target: { value: "1.5GB" } });
  fireEvent.click(screen.getByRole("button", { name: "Dry run" }));
  await screen.findByText(/"1\.5GB" is not a size/);
  screen.getByText("Choose the dataset to move.");
  assert.equal(cp.world.calls.includes("JobService/PlanMigration"), false);
});

test("a viewer gets no form", async () => {
  const cp = withPlannableObjects();
  renderConsole(cp, "#/jobs/new", "viewer-secret");
  await screen.findByText(/Planning a migration needs the operator role/);
  assert.equal(screen.queryByRole("button", { name: "Start migration" }), null);
});

test("a site and a path stand for the dataset holding it, with the rest as the prefix", async () => {
  const cp = withPlannableObjects();
  renderConsole(cp, "#/jobs/new", "operator-secret");
  await chooseDestination();
  fireEvent.click(screen.getByLabelText("A site and path"));
  fireEvent.change(await screen.findByLabelText("Source site"), { target: { value: "fast" } });
  // Nothing of genome (projects/genome) is under another path.
  fireEvent.input(screen.getByLabelText("Path on the site"), { target: { value: "projects/other" } });
  fireEvent.click(screen.getByRole("button", { name: "Dry run" }));
  await screen.findByText(/No dataset on fast holds projects\/other: Ferry moves datasets/);
  assert.equal(screen.getByLabelText("Path on the site").getAttribute("aria-invalid"), "true");
  fireEvent.input(screen.getByLabelText("Path on the site"), { target: { value: "/projects/genome/raw/" } });
  fireEvent.click(screen.getByRole("button", { name: "Dry run" }));
  await screen.findByText(/2 objects \(4\.00 MiB\) would move/);
  screen.getByText("Dataset genome, objects below raw/.");
  fireEvent.click(screen.getByRole("button", { name: "Start migration" }));
  await waitFor(() => assert.equal(location.hash, "#/jobs/job-2"));
  const job = cp.world.jobs[0];
  assert.equal(job.filter?.prefix, "raw/");
  assert.equal(job.dataset, "d-genome");
});
