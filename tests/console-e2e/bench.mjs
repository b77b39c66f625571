// For the console benchmark (tests/src/bin/bench_console.rs): how long, from a fresh
// page load (the console's JavaScript fetched and run), until the migrations list and
// the activity page of job FERRY_E2E_JOB are usable, the median of five loads each.

import { newPage, run, setting, signIn, url } from "./lib.mjs";

const job = setting("JOB");

async function timeLoad(page, hash, ready) {
  const times = [];
  for (let i = 0; i < 5; i++) {
    await page.goto("about:blank");
    const start = performance.now();
    await page.goto(`${url()}/${hash}`);
    await ready();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return times[2];
}

await run(async (browser) => {
  const page = await newPage(browser);
  await signIn(page, setting("TOKEN"));
  const list = await timeLoad(page, "#/jobs", () => page.locator(`a[href$="${job}"]`).first().waitFor());
  console.log(`migrations list usable after ${list.toFixed(0)} ms (median of 5 loads)`);
  const activity = await timeLoad(page, `#/jobs/${job}`, async () => {
    await page.locator("p[aria-live]").filter({ hasText: /completed/i }).waitFor();
    await page.locator("table tbody tr").first().waitFor();
  });
  const rows = await page.locator("table tbody tr").count();
  console.log(
    `activity page of the job usable after ${activity.toFixed(0)} ms (median of 5 loads; ${rows} object rows shown per page)`,
  );
});
