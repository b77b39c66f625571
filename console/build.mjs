// Builds the console into exactly the three files the control plane embeds:
// dist/index.html, dist/app.js and dist/app.css. The output is deterministic (no
// hashes, no timestamps, no source maps), so `node build.mjs --check` can rebuild in
// memory and fail when the committed dist/ differs from what the sources produce.
import { build } from "esbuild";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";

const check = process.argv.includes("--check");

const result = await build({
  entryPoints: ["src/main.tsx"],
  outfile: "dist/app.js",
  bundle: true,
  minify: true,
  format: "iife",
  target: ["es2020", "chrome100", "firefox100", "safari15"],
  jsx: "automatic",
  jsxImportSource: "preact",
  legalComments: "none",
  charset: "utf8",
  write: false,
  logLevel: "warning",
});

const files = new Map([["dist/index.html", await readFile("index.html")]]);
for (const file of result.outputFiles) {
  const name = "dist/" + file.path.split(/[\\/]/).pop();
  files.set(name, Buffer.from(file.contents));
}
const expected = ["dist/index.html", "dist/app.js", "dist/app.css"];
const names = [...files.keys()].sort();
if (names.join() !== [...expected].sort().join()) {
  throw new Error(`the build must produce exactly ${expected.join(", ")}, not ${names.join(", ")}`);
}

if (check) {
  const stale = [];
  for (const [name, contents] of files) {
    const committed = await readFile(name).catch(() => null);
    if (!committed || !committed.equals(contents)) stale.push(name);
  }
  if (stale.length > 0) {
    console.error(`out of date: ${stale.join(", ")}; run \`npm run build\` and commit dist/`);
    process.exit(1);
  }
  console.log("dist/ matches the sources");
} else {
  await mkdir("dist", { recursive: true });
  for (const [name, contents] of files) await writeFile(name, contents);
  for (const name of expected) {
    const contents = files.get(name);
    const gzipped = gzipSync(contents, { level: 9 }).length;
    console.log(`${name.padEnd(16)} ${String(contents.length).padStart(8)} bytes, ${gzipped} gzipped`);
  }
}
