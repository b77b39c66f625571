import "./setup";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { fireEvent, screen, waitFor, within } from "@testing-library/preact";
import { JobSchema, JobState } from "../src/gen/ferry/v1/job_pb";
import { catalogue, renderConsole, reset } from "./harness";

afterEach(reset);

test("the list shows each migration's state, progress, bytes and sites by name", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs", "viewer-secret");
  const row = (await screen.findByText("fast → vault")).closest("tr")!;
  const cells = within(row);
  cells.getByText("copying");
  await cells.findByText("genome");
  assert.match(row.textContent!, /10 \/ 25/);
  assert.match(row.textContent!, /1\.00 GiB \/ 4\.00 GiB/);
});

test("filters go to the server and into the address; a list with none matching says so", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs", "viewer-secret");
  await screen.findByText("fast → vault");
  fireEvent.change(screen.getByLabelText("State"), { target: { value: "failed" } });
  fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
  await screen.findByText("No migration matches these filters.");
  assert.equal(location.hash, "#/jobs?state=failed");
  fireEvent.click(screen.getByRole("link", { name: "Clear filters" }));
  await screen.findByText("fast → vault");
});

test("pages follow the server's page tokens forwards and back", async () => {
  const cp = catalogue();
  for (let i = 2; i <= 30; i++) {
    cp.world.jobs.push(
      create(JobSchema, { id: `job-${i}`, dataset: "d-genome", sourceSite: "s-vault", destinationSite: "s-fast", state: JobState.COMPLETED }),
    );
  }
  renderConsole(cp, "#/jobs", "viewer-secret");
  await screen.findByText("fast → vault");
  assert.equal(screen.getAllByRole("row").length, 1 + 25);
  const prev = screen.getByRole("button", { name: "Previous page" }) as HTMLButtonElement;
  assert.equal(prev.disabled, true);
  fireEvent.click(screen.getByRole("button", { name: "Next page" }));
  await waitFor(() => assert.equal(screen.getAllByRole("row").length, 1 + 5));
  screen.getByText("Page 2");
  assert.equal((screen.getByRole("button", { name: "Next page" }) as HTMLButtonElement).disabled, true);
  fireEvent.click(screen.getByRole("button", { name: "Previous page" }));
  await screen.findByText("fast → vault");
});
