import "./setup";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { fireEvent, screen } from "@testing-library/preact";
import { HourlyAccessSchema } from "../src/gen/ferry/v1/access_pb";
import { ReplicaRole, ReplicaSchema, ReplicaState } from "../src/gen/ferry/v1/dataset_pb";
import { Tier } from "../src/gen/ferry/v1/common_pb";
import { RecommendationSchema, RecommendationState } from "../src/gen/ferry/v1/recommendation_pb";
import { catalogue, HOUR, renderConsole, reset } from "./harness";

afterEach(reset);

function withAdvice() {
  const cp = catalogue();
  cp.world.recommendations.push(
    create(RecommendationSchema, {
      id: "rec-1",
      dataset: "d-genome",
      currentSite: "s-fast",
      currentTier: Tier.HOT,
      recommendedSite: "s-vault",
      recommendedTier: Tier.COLD,
      state: RecommendationState.PENDING,
      reasons: [
        { code: "recency", message: "last accessed 40d ago: cold" },
        { code: "cost", message: "monthly cost $1.15 on fast → $0.20 on vault" },
      ],
      cost: { monthlyCostNow: 1.15, monthlyCostAfter: 0.2, moveCost: 0.45, paybackDays: 14.2 },
    }),
  );
  const now = Date.now();
  cp.world.hours.set("d-genome", [
    create(HourlyAccessSchema, { hour: timestampFromDate(new Date(now - 2 * HOUR)), reads: 20n, bytesRead: 5n * 1024n * 1024n }),
    create(HourlyAccessSchema, { hour: timestampFromDate(new Date(now - 20 * 24 * HOUR)), reads: 7n, bytesRead: 1024n }),
  ]);
  return cp;
}

test("datasets are listed with their site by name and filtered by tier", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/datasets", "viewer-secret");
  const link = await screen.findByRole("link", { name: "genome" });
  assert.equal(link.getAttribute("href"), "#/datasets/genome");
  fireEvent.change(screen.getByLabelText("Tier"), { target: { value: "cold" } });
  fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
  await screen.findByText("No dataset matches these filters.");
});

test("datasets are found by part of their name, in any case", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/datasets", "viewer-secret");
  await screen.findByRole("link", { name: "genome" });
  fireEvent.input(screen.getByLabelText("Name contains"), { target: { value: "NOM" } });
  fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
  await screen.findByRole("link", { name: "genome" });
  assert.match(location.hash, /name=NOM/);
  fireEvent.input(screen.getByLabelText("Name contains"), { target: { value: "nothing-like-it" } });
  fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
  await screen.findByText("No dataset matches these filters.");
});

test("a dataset shows its replicas, its reads over 7 or 30 days and every reason and cost", async () => {
  const cp = withAdvice();
  renderConsole(cp, "#/datasets/genome", "viewer-secret");
  await screen.findByText("primary");
  await screen.findByRole("img", { name: "Reads per hour: 20 in all, at most 20 in one hour." });
  fireEvent.click(screen.getByRole("button", { name: "Last 30 days" }));
  await screen.findByRole("img", { name: "Reads per hour: 27 in all, at most 20 in one hour." });
  screen.getByText("last accessed 40d ago: cold");
  screen.getByText("monthly cost $1.15 on fast → $0.20 on vault");
  screen.getByText("$1.15");
  screen.getByText("$0.45");
  screen.getByText("14.2 days");
  assert.equal(screen.queryByRole("button", { name: "Approve and migrate" }), null);
});

test("a replica kept by sync jobs shows its last sync and its lag", async () => {
  const cp = catalogue();
  const synced = new Date(Date.now() - (2 * 3600 + 5 * 60) * 1000);
  cp.world.replicas.get("d-genome")!.push(
    create(ReplicaSchema, {
      site: "s-vault",
      path: "mirror/genome",
      role: ReplicaRole.SECONDARY,
      state: ReplicaState.READY,
      syncTime: timestampFromDate(synced),
      lag: { seconds: BigInt(2 * 3600 + 5 * 60), nanos: 0 },
    }),
  );
  renderConsole(cp, "#/datasets/genome", "viewer-secret");
  const row = (await screen.findByText("mirror/genome")).closest("tr")!;
  assert.match(row.textContent ?? "", /secondary/);
  assert.match(row.textContent ?? "", /2h 5m/);
  const pad = (n: number) => String(n).padStart(2, "0");
  const shown = `${synced.getFullYear()}-${pad(synced.getMonth() + 1)}-${pad(synced.getDate())} ${pad(synced.getHours())}:${pad(synced.getMinutes())}`;
  assert.ok((row.textContent ?? "").includes(shown), `${row.textContent} shows ${shown}`);
  const primary = screen.getByText("primary").closest("tr")!;
  assert.doesNotMatch(primary.textContent ?? "", /\dh \d+m/, "the primary has no lag");
});

test("an operator approves a recommendation and is linked to the migration it planned", async () => {
  const cp = withAdvice();
  renderConsole(cp, "#/datasets/genome", "operator-secret");
  fireEvent.click(await screen.findByRole("button", { name: "Approve and migrate" }));
  const link = await screen.findByRole("link", { name: "job job-from" });
  assert.equal(link.getAttribute("href"), "#/jobs/job-from-rec-1");
  await screen.findByText("approved");
  assert.equal(screen.queryByRole("button", { name: "Reject" }), null);
});

test("an operator rejects a recommendation with a reason", async () => {
  const cp = withAdvice();
  renderConsole(cp, "#/datasets/genome", "operator-secret");
  fireEvent.click(await screen.findByRole("button", { name: "Reject" }));
  fireEvent.input(screen.getByLabelText("Reason for rejecting"), { target: { value: "needed for the Q3 run" } });
  fireEvent.click(screen.getByRole("button", { name: "Reject recommendation" }));
  await screen.findByText("rejected");
  assert.equal(cp.world.recommendations[0].state, RecommendationState.REJECTED);
});

test("a dataset that does not exist says so", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/datasets/nope", "viewer-secret");
  await screen.findByText("Not found: dataset nope not found");
});
