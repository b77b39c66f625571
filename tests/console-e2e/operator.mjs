// An operator's session in the console, as tests/tests/console/browser.rs sets it up:
// sign in, find dataset `genome`, plan a migration of its reads (`**/*.fastq`) to
// `archive` after a refused glob and a dry run, watch it complete live, read its
// objects and download their report, approve the recommendation for `scans` and follow
// it to its job, and read the sites, agents and audit pages. Every page visited is
// photographed and scanned by axe-core.

import { readFileSync } from "node:fs";
import { check, newPage, run, setting, signIn, step, url, visit } from "./lib.mjs";

const reads = Number(setting("READS"));
const readsBytes = Number(setting("READS_BYTES"));

/** The console's own rendering of a byte count (binary units, as format.ts). */
function kib(bytes) {
  const n = bytes / 1024;
  return `${n.toFixed(n < 10 ? 2 : 1)} KiB`;
}

await run(async (browser) => {
  const page = await newPage(browser);

  step("sign in as the admin");
  await signIn(page, setting("TOKEN"));
  await page.getByRole("heading", { level: 1 }).first().waitFor();
  await page.getByText("fast", { exact: true }).first().waitFor();
  await visit(page, "overview");

  step("find the dataset");
  await page.getByRole("link", { name: "Datasets", exact: true }).click();
  await page.getByRole("link", { name: "genome", exact: true }).waitFor();
  await visit(page, "datasets");
  await page.getByLabel("Name contains").fill("GEN");
  await page.getByRole("button", { name: "Apply filters" }).click();
  await page.waitForURL(/#\/datasets\?name=GEN$/);
  await page.getByRole("link", { name: "scans", exact: true }).waitFor({ state: "detached" });
  await page.getByRole("link", { name: "genome", exact: true }).click();
  await page.waitForURL(/#\/datasets\/genome$/);
  await page.getByRole("heading", { level: 1, name: /genome/ }).waitFor();
  await visit(page, "dataset");

  step("plan a migration: a bad glob is refused by the server, naming the field");
  await page.goto(`${url()}/#/jobs/new`);
  await page.getByRole("heading", { level: 1, name: "New migration" }).waitFor();
  // A select once the datasets are listed (a text field with suggestions beyond 1,000).
  await page.locator("select#plan-dataset").waitFor();
  await page.getByLabel("Dataset", { exact: true }).selectOption("genome");
  await page.getByLabel("Destination site").selectOption("archive");
  await page.getByLabel("Exclude globs").fill("[");
  await page.getByRole("button", { name: "Dry run" }).click();
  await page.getByText(/filter\.exclude/).first().waitFor();
  await page.getByLabel("Exclude globs").fill("");

  step("the dry run counts the reads before anything starts");
  await page.getByLabel("Include globs").fill("**/*.fastq");
  await page.getByRole("button", { name: "Dry run" }).click();
  const dryRun = page.getByRole("status").filter({ hasText: "would move" });
  await dryRun.waitFor();
  const figures = await dryRun.innerText();
  check(figures.includes(`${reads} objects`), `dry run shows ${reads} objects: ${figures}`);
  check(figures.includes(kib(readsBytes)), `dry run shows ${kib(readsBytes)}: ${figures}`);
  await visit(page, "new-migration");

  step("start it and watch it complete, the page updating itself");
  await page.getByRole("button", { name: "Start migration" }).click();
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  const jobId = /#\/jobs\/([0-9a-f-]{36})$/.exec(page.url())[1];
  await page.evaluate(() => {
    window.__ferryE2eSamePage = true;
  });
  const sentence = page.locator("p[aria-live]").first();
  const seen = new Set();
  const deadline = Date.now() + 90_000;
  for (;;) {
    const text = (await sentence.innerText().catch(() => "")).trim();
    if (text) seen.add(text);
    if (/^completed/i.test(text)) break;
    check(!/^(failed|cancelled)/i.test(text), `the migration ended: ${text}`);
    check(Date.now() < deadline, `not completed after 90 s; last: ${text}`);
    await page.waitForTimeout(50);
  }
  check(
    await page.evaluate(() => window.__ferryE2eSamePage === true),
    "the page was reloaded: progress must arrive without one",
  );
  check(seen.size >= 2, `the progress changed in place: ${[...seen].join(" | ")}`);
  const final = [...seen].pop();
  check(final.includes(`${reads} of ${reads} objects`), `all reads done: ${final}`);
  step(`progress seen: ${[...seen].join(" | ")}`);

  step("the activity page lists every object, verified");
  const rows = page.locator("table tbody tr");
  await page.waitForFunction((n) => document.querySelectorAll("table tbody tr").length === n, reads);
  // The table is listed again when the state changes: let the listing the completed
  // state asked for arrive before reading it.
  await page
    .waitForFunction(
      () => [...document.querySelectorAll("table tbody tr td:nth-child(3)")].every((td) => /verified/i.test(td.textContent ?? "")),
      null,
      { timeout: 10_000 },
    )
    .catch(() => {});
  const statuses = await rows.locator("td:nth-child(3)").allInnerTexts();
  check(
    statuses.every((s) => /verified/i.test(s)),
    `every object verified: ${[...new Set(statuses)].join(", ")}`,
  );
  await page.getByLabel("Status").selectOption({ label: "failed" });
  await page.getByText("No failed object.").waitFor();
  await page.getByLabel("Status").selectOption({ index: 0 });
  await page.waitForFunction((n) => document.querySelectorAll("table tbody tr").length === n, reads);
  await visit(page, "job-activity");
  const [download] = await Promise.all([
    page.waitForEvent("download"),
    page.getByRole("button", { name: /report/i }).click(),
  ]);
  const csv = readFileSync(await download.path(), "utf8").trim().split("\n");
  check(csv.length === reads + 1, `the report has a header and ${reads} rows: ${csv.length} lines`);
  step(`job ${jobId}: report of ${csv.length - 1} objects downloaded`);

  step("approve the recommendation for scans and follow it to its job");
  await page.goto(`${url()}/#/datasets/scans`);
  await page.getByRole("heading", { level: 1, name: /scans/ }).waitFor();
  await page.getByRole("button", { name: "Approve" }).first().click();
  // Approving links the migration it planned.
  await page.waitForFunction(() =>
    [...document.querySelectorAll("a")].some((a) => /#\/jobs\/[0-9a-f-]{36}$/.test(a.getAttribute("href") ?? "")),
  );
  const target = await page.evaluate(
    () => [...document.querySelectorAll("a")].map((a) => a.getAttribute("href") ?? "").find((h) => /#\/jobs\/[0-9a-f-]{36}$/.test(h)),
  );
  await page.locator(`a[href="${target}"]`).first().click();
  await page.waitForURL(/#\/jobs\/[0-9a-f-]{36}$/);
  const followed = /#\/jobs\/([0-9a-f-]{36})$/.exec(page.url())[1];
  check(followed !== jobId, "a new job, not the genome one");
  await page.getByRole("heading", { level: 1, name: /scans/ }).waitFor();
  console.log(`followed to job ${followed}`);

  step("migrations, sites, agents and the audit log");
  await page.goto(`${url()}/#/jobs`);
  await page.locator(`a[href$="${jobId}"]`).first().waitFor();
  await visit(page, "migrations");
  await page.goto(`${url()}/#/sites`);
  await page.getByText("archive").first().waitFor();
  await page.getByRole("button", { name: "Replace credentials of vault" }).click();
  await page.getByLabel("access_key_id").fill("AKIACONSOLE");
  await page.getByLabel("secret_access_key").fill("console-typed-secret");
  await page.getByRole("button", { name: "Store credentials" }).click();
  await page.getByText("Stored: access_key_id, secret_access_key.").waitFor();
  check(!(await page.content()).includes("console-typed-secret"), "the secret stays off the page");
  await visit(page, "sites");
  await page.goto(`${url()}/#/agents`);
  await page.getByText(/alive/i).first().waitFor();
  await visit(page, "agents");
  await page.goto(`${url()}/#/audit`);
  await page.getByText(/PlanMigration/).first().waitFor();
  await visit(page, "audit");
  page.assertQuiet();
});
