import "./setup";
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";
import { fireEvent, screen, waitFor } from "@testing-library/preact";
import { catalogue, renderConsole, reset } from "./harness";

afterEach(reset);

async function signIn(token: string) {
  fireEvent.input(screen.getByLabelText("Access token"), { target: { value: token } });
  fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
}

test("an unknown token is refused with the server's reason and nothing is kept", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs");
  await signIn("not-a-token");
  const alert = await screen.findByRole("alert");
  assert.match(alert.textContent!, /does not accept this token/);
  assert.match(alert.textContent!, /missing, unknown, expired or revoked token/);
  assert.equal(sessionStorage.getItem("ferry.console.token"), null);
});

test("signing in shows the name and role, keeps the token for the tab, and opens the page asked for", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs");
  await signIn("viewer-secret");
  await screen.findByRole("heading", { name: "Migrations" });
  const header = screen.getByRole("banner");
  assert.match(header.textContent!, /Signed in as dashboard/);
  assert.match(header.textContent!, /viewer/);
  assert.equal(sessionStorage.getItem("ferry.console.token"), "viewer-secret");

  fireEvent.click(screen.getByRole("button", { name: "Sign out" }));
  await screen.findByLabelText("Access token");
  assert.equal(sessionStorage.getItem("ferry.console.token"), null);
});

test("a token kept from earlier in the tab is checked and used without asking again", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/sites", "admin-secret");
  await screen.findByRole("heading", { name: "Sites" });
  assert.ok(cp.world.calls.includes("AdminService/WhoAmI"));
});

test("a token revoked while signed in sends the user back to sign in with a clear message", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs", "operator-secret");
  await screen.findByRole("heading", { name: "Migrations" });
  cp.revoke("operator-secret");
  location.hash = "#/datasets";
  await screen.findByLabelText("Access token");
  screen.getByText("Your session ended: the token is expired or revoked. Sign in again.");
  assert.equal(sessionStorage.getItem("ferry.console.token"), null);
});

test("a viewer sees no control it may not use", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs", "viewer-secret");
  await screen.findByText("fast → vault");
  assert.equal(screen.queryByRole("link", { name: "New migration" }), null);
  assert.equal(screen.queryByRole("link", { name: "Audit log" }), null);

  location.hash = "#/jobs/job-1";
  await screen.findByText(/10 of 25 objects/);
  assert.equal(screen.queryByRole("button", { name: "Cancel migration" }), null);
  assert.equal(screen.queryByLabelText("New bandwidth limit"), null);

  location.hash = "#/audit";
  await screen.findByText(/The audit log needs the admin role/);
});

test("an operator may plan migrations but not read the audit log; an admin may", async () => {
  const cp = catalogue();
  renderConsole(cp, "#/jobs", "operator-secret");
  await screen.findByRole("link", { name: "New migration" });
  assert.equal(screen.queryByRole("link", { name: "Audit log" }), null);
  reset();
  renderConsole(cp, "#/jobs", "admin-secret");
  await screen.findByRole("link", { name: "Audit log" });
  await waitFor(() => screen.getByRole("link", { name: "New migration" }));
});
