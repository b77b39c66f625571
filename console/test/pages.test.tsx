import "./setup";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { fireEvent, screen, waitFor, within } from "@testing-library/preact";
import { AuditEventSchema, Role } from "../src/gen/ferry/v1/admin_pb";
import { AgentSchema, AgentState } from "../src/gen/ferry/v1/agent_pb";
import { ReplicaRole, ReplicaSchema, ReplicaState } from "../src/gen/ferry/v1/dataset_pb";
import { catalogue, renderConsole, reset } from "./harness";

afterEach(reset);

test("the overview prices what each site holds and counts its agents", async () => {
  const cp = catalogue();
  cp.world.agents.push(
    create(AgentSchema, { id: "a1", site: "s-fast", state: AgentState.ALIVE, hostname: "h1" }),
    create(AgentSchema, { id: "a2", site: "s-vault", state: AgentState.STALE, hostname: "h2" }),
  );
  // A migration left the source as the primary's copy on vault: it costs there too.
  cp.world.replicas.get("d-genome")!.push(
    create(ReplicaSchema, {
      site: "s-vault",
      path: "ferry/genome",
      role: ReplicaRole.SECONDARY,
      state: ReplicaState.READY,
    }),
  );
  renderConsole(cp, "#/", "viewer-secret");
  const fast = (await screen.findByRole("cell", { name: "fast" })).closest("tr")!;
  await within(fast).findByText("46.6 GiB");
  within(fast).getByText("$1.15"); // 50 GB × $0.023
  within(fast).getByText("1 online");
  const vault = screen.getByRole("cell", { name: "vault" }).closest("tr")!;
  within(vault).getByText("46.6 GiB");
  within(vault).getByText("$0.20"); // 50 GB × $0.004
  within(vault).getByText(", 1 offline");
  screen.getByText("$1.35"); // the month's storage, both sites
  await screen.findByText("1 of 2");
});

test("sites show options and the names of stored credentials, never their values", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/sites", "viewer-secret");
  await screen.findByText("region=eu-west-1");
  screen.getByText("access_key_id, secret_access_key (stored; never shown)");
});

test("an admin replaces a site's credentials, which are sent once and never shown", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/sites", "admin-secret");
  fireEvent.click(await screen.findByRole("button", { name: "Replace credentials of vault" }));
  // A file:// site has no credentials to set.
  assert.equal(screen.queryByRole("button", { name: "Replace credentials of fast" }), null);
  const secret = screen.getByLabelText("secret_access_key") as HTMLInputElement;
  assert.equal(secret.type, "password");
  fireEvent.input(screen.getByLabelText("access_key_id"), { target: { value: "AKIANEW" } });
  fireEvent.input(secret, { target: { value: "s3cr3t-value" } });
  fireEvent.click(screen.getByRole("button", { name: "Store credentials" }));
  await screen.findByText("Stored: access_key_id, secret_access_key.");
  assert.deepEqual(cp.world.credentials.get("s-vault"), {
    access_key_id: "AKIANEW",
    secret_access_key: "s3cr3t-value",
  });
  assert.ok(!document.body.innerHTML.includes("s3cr3t-value"), "the secret stays off the page");
});

test("a viewer or operator is not offered credentials", async () => {
  for (const token of ["viewer-secret", "operator-secret"]) {
    const cp = catalogue();
    renderConsole(cp, "#/sites", token);
    await screen.findByText("region=eu-west-1");
    assert.equal(screen.queryByRole("button", { name: /Replace credentials/ }), null, token);
    reset();
  }
});

test("agents show their site, state and time since the last heartbeat", async () => {
  const cp = catalogue();
  cp.world.agents.push(
    create(AgentSchema, {
      id: "a1",
      site: "s-fast",
      state: AgentState.ALIVE,
      hostname: "node-7",
      version: "0.1.0",
      concurrency: 16,
      lastHeartbeatTime: timestampFromDate(new Date(Date.now() - 12_000)),
    }),
  );
  renderConsole(cp, "#/agents", "viewer-secret");
  const row = (await screen.findByText("node-7")).closest("tr")!;
  within(row).getByText("fast");
  within(row).getByText("alive");
  within(row).getByText("16");
  assert.match(row.textContent!, /1[23]s ago/);
});

test("an admin filters the audit log by principal", async () => {
  const cp = catalogue();
  cp.world.audit.push(
    create(AuditEventSchema, { id: "e1", principal: "token:ci", role: Role.ADMIN, method: "ferry.v1.SiteService/CreateSite", resource: "site:fast", outcome: "ok" }),
    create(AuditEventSchema, { id: "e2", principal: "token:dashboard", role: Role.VIEWER, method: "ferry.v1.JobService/CancelJob", resource: "job:1", outcome: "denied: needs the operator role" }),
  );
  renderConsole(cp, "#/audit", "admin-secret");
  await screen.findByText("site:fast");
  fireEvent.input(screen.getByLabelText("Principal"), { target: { value: "token:dashboard" } });
  fireEvent.click(screen.getByRole("button", { name: "Apply filters" }));
  await waitFor(() => assert.ok(!screen.queryByText("site:fast"), "the unfiltered record is still shown"));
  screen.getByText("denied: needs the operator role");
  assert.equal(location.hash, "#/audit?principal=token%3Adashboard");
});
