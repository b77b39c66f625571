// A viewer in the console: it signs in and moves about with the keyboard alone, reads
// everything, is offered no button its role may not press, and, once an admin revokes
// its token, is sent back to sign in with a message that says why.

import { check, grpcWeb, newPage, run, setting, step, stringField, tabTo, url, visit } from "./lib.mjs";

const job = setting("JOB");

/** No enabled control named `name` on the page. */
async function noButton(page, name) {
  const count = await page.getByRole("button", { name }).count();
  check(count === 0, `a viewer is offered "${name}"`);
}

await run(async (browser) => {
  const page = await newPage(browser);

  step("sign in as a viewer, from the keyboard alone");
  await page.goto(`${url()}/#/datasets`);
  await tabTo(page, "the token field", () => document.activeElement?.id === "token");
  await page.keyboard.type(setting("TOKEN"));
  await page.keyboard.press("Enter");
  await page.getByRole("button", { name: "Sign out" }).waitFor();
  await page.getByText(/viewer/i).first().waitFor();
  // The bookmarked page opens once signed in; the keyboard reaches the navigation.
  await page.getByRole("heading", { level: 1, name: "Datasets" }).waitFor();
  await tabTo(page, "the Migrations link", () => document.activeElement?.textContent === "Migrations");
  await page.keyboard.press("Enter");
  await page.waitForURL(/#\/jobs$/);
  for (const name of ["New migration", "Audit"]) {
    check((await page.getByRole("link", { name, exact: true }).count()) === 0, `a viewer is offered "${name}"`);
  }

  step("a finished job: its figures, but no cancel, retry or limit");
  await page.goto(`${url()}/#/jobs/${job}`);
  await page.locator("p[aria-live]").filter({ hasText: /completed/i }).waitFor();
  await page.locator("table tbody tr").first().waitFor();
  for (const name of [/cancel/i, /retry/i, /limit/i]) await noButton(page, name);
  check((await page.getByLabel(/bandwidth limit/i).count()) === 0, "a viewer is offered a bandwidth field");
  await visit(page, "viewer-job");

  step("a dataset with advice: no approve, no reject");
  await page.goto(`${url()}/#/datasets/scans`);
  await page.getByRole("heading", { level: 1, name: /scans/ }).waitFor();
  await page.getByText(/archive/).first().waitFor();
  for (const name of [/approve/i, /reject/i]) await noButton(page, name);
  await visit(page, "viewer-dataset");

  step("planning is refused in so many words");
  await page.goto(`${url()}/#/jobs/new`);
  await page.getByText(/operator/).first().waitFor();
  await noButton(page, /start migration/i);

  step("an admin revokes the token: the viewer is back at sign-in, told why");
  const status = await grpcWeb(
    "ferry.v1.AdminService/RevokeToken",
    setting("ADMIN_TOKEN"),
    stringField(1, setting("TOKEN_NAME")),
  );
  check(status === 0, `RevokeToken answered grpc-status ${status}`);
  await page.goto(`${url()}/#/datasets`);
  await page.getByLabel("Access token").waitFor({ timeout: 10_000 });
  const notice = await page.getByRole("status").first().innerText();
  check(/expired or revoked/i.test(notice), `the sign-in page says why: ${notice}`);
  await visit(page, "signin-after-revocation");
  page.assertQuiet();
});
