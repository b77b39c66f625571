// What every console scenario needs: Chromium (the Debian package, through
// playwright-core), signing in, screenshots, an axe-core scan, and a raw gRPC-Web call.
// The Rust test that runs a scenario (tests/tests/console/browser.rs) starts the
// servers and passes their addresses and tokens in FERRY_E2E_* variables.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { chromium } from "playwright-core";

const require = createRequire(import.meta.url);

/** A required FERRY_E2E_* setting. */
export function setting(name) {
  const value = process.env[`FERRY_E2E_${name}`];
  if (!value) throw new Error(`FERRY_E2E_${name} is not set`);
  return value;
}

export const url = () => setting("URL");

/** Logs a step; the Rust test prints the whole transcript when it fails. */
export function step(text) {
  console.log(`- ${text}`);
}

export function check(condition, message) {
  if (!condition) throw new Error(`check failed: ${message}`);
}

/** Runs `scenario(browser)` in headless Chromium; any failure exits 1 with its reason. */
export async function run(scenario) {
  const browser = await chromium.launch({
    executablePath: setting("CHROMIUM"),
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    await scenario(browser);
    step("done");
  } catch (e) {
    console.error(e?.stack ?? String(e));
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
}

/** A fresh page at 1280×800 whose console errors (a CSP refusal, an exception) fail
 * the scenario when `assertQuiet` is called. */
export async function newPage(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const page = await context.newPage();
  const problems = [];
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() === "error" && !/status of 4\d\d/.test(m.text())) problems.push(`console error: ${m.text()}`);
  });
  page.assertQuiet = () => check(problems.length === 0, problems.join("\n"));
  return page;
}

/** Opens the console and signs in with `token`; returns once the header shows who. */
export async function signIn(page, token) {
  await page.goto(`${url()}/#/`);
  await page.getByLabel("Access token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

/** Presses Tab until `matches(document.activeElement)` holds (at most 40 times), as a
 * keyboard user moves to a control; fails if it never gets there. */
export async function tabTo(page, what, matches) {
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press("Tab");
    if (await page.evaluate(matches)) return;
  }
  throw new Error(`check failed: Tab never reaches ${what}`);
}

/** Keeps a full-page screenshot of what the user sees now, as `<name>.png`. */
export async function shot(page, name) {
  await page.screenshot({ path: join(setting("SCREENSHOTS"), `${name}.png`), fullPage: true });
}

const axeSource = readFileSync(require.resolve("axe-core/axe.min.js"), "utf8");

/** Scans the page with axe-core (WCAG 2 A and AA rules); fails on any serious or
 * critical violation, naming each. Injected through the DevTools protocol, so the
 * console's own CSP stays in force. */
export async function accessible(page, name) {
  await page.evaluate(axeSource);
  const result = await page.evaluate(() =>
    // eslint-disable-next-line no-undef
    axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] } }),
  );
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(
    bad.length === 0,
    `${name}: axe-core found ${bad.length} serious violation(s):\n` +
      bad.map((v) => `${v.id} (${v.impact}): ${v.help}\n  ${v.nodes.map((n) => n.target.join(" ")).join("\n  ")}`).join("\n"),
  );
  step(`${name}: axe-core, ${result.passes.length} rules pass, no serious violation`);
}

/** Screenshot, then accessibility scan: what each page visited gets, once it has
 * finished loading. */
export async function visit(page, name) {
  await page.waitForFunction(() => !/Loading\b/.test(document.body.innerText), null, { timeout: 15_000 });
  await shot(page, name);
  await accessible(page, name);
}

/** A length-delimited protobuf string field (`field` < 16), for a raw gRPC-Web call. */
export function stringField(field, value) {
  const bytes = Buffer.from(value, "utf8");
  check(bytes.length < 128, "short strings only");
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

/** Calls `method` (`ferry.v1.AdminService/RevokeToken`) over gRPC-Web, as another
 * client would, with `message` already encoded; returns the grpc-status. */
export async function grpcWeb(method, token, message) {
  const frame = Buffer.alloc(5 + message.length);
  frame.writeUInt32BE(message.length, 1);
  message.copy(frame, 5);
  const answer = await fetch(`${url()}/${method}`, {
    method: "POST",
    headers: {
      "content-type": "application/grpc-web+proto",
      "x-grpc-web": "1",
      authorization: `Bearer ${token}`,
    },
    body: frame,
  });
  const body = Buffer.from(await answer.arrayBuffer());
  const status = answer.headers.get("grpc-status") ?? /grpc-status:(\d+)/.exec(body.toString("latin1"))?.[1];
  return Number(status);
}
