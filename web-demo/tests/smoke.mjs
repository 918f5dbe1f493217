#!/usr/bin/env node
// Smoke test of the browser listener against the real Rust server.
//
//   node web-demo/tests/smoke.mjs [--transport webtransport|websocket] [--headed]
//
// Needs: web-demo/dist (npm run build), $TONE_SERVER or target/debug/examples/tone_server
// (cargo build -p moq-audio --example tone_server) and Debian's Chromium at /usr/bin/chromium
// (or $CHROMIUM). Starts the tone server on a free loopback port, opens the page with
// ?autostart=1, waits until window.moqAudio shows audio rendered in ≥ 2 generations and ≥ 1
// measured flush, clicks Interrupt, checks the server saw playout feedback, microphone audio and
// the interrupt, saves a screenshot and the final state to web-demo/test-artifacts/, and stops
// the server. Exits non-zero on failure.

import { spawn } from "node:child_process";
import { existsSync, mkdirSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const webDemo = resolve(here, "..");
const repo = resolve(webDemo, "..");
const artifacts = join(webDemo, "test-artifacts");
const serverBin = process.env.TONE_SERVER ?? join(repo, "target/debug/examples/tone_server");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

const argv = process.argv.slice(2);
const transport = argv.includes("--transport") ? argv[argv.indexOf("--transport") + 1] : "webtransport";
const headed = argv.includes("--headed");
const TIMEOUT_MS = 40_000;

const results = [];
function check(name, ok, detail = "") {
  results.push({ name, ok });
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${detail ? ` – ${detail}` : ""}`);
}

function fail(message) {
  console.error(`error: ${message}`);
  process.exit(2);
}

if (!existsSync(join(webDemo, "dist/index.html"))) fail("web-demo/dist is missing: run `npm ci && npm run build` in web-demo/");
if (!existsSync(serverBin)) fail(`${serverBin} is missing: run \`cargo build -p moq-audio --example tone_server\``);
if (!existsSync(chromiumPath)) fail(`${chromiumPath} is missing: apt-get install -y chromium`);
mkdirSync(artifacts, { recursive: true });

// ---- the server -------------------------------------------------------------------------------
const server = spawn(serverBin, ["127.0.0.1:0", "--static", join(webDemo, "dist"), "--flush-every", "3", "--seconds", "10"], {
  stdio: ["ignore", "pipe", "pipe"],
});
const serverLines = [];
let onLine = () => {};
function feed(stream) {
  let buf = "";
  stream.on("data", (chunk) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      serverLines.push(line);
      onLine(line);
    }
  });
}
feed(server.stdout);
feed(server.stderr);
let serverExited = false;
server.on("exit", () => (serverExited = true));

function stopServer() {
  if (!serverExited) server.kill("SIGTERM");
}
process.on("exit", stopServer);

const url = await new Promise((resolveUrl, reject) => {
  const timer = setTimeout(() => reject(new Error("the server did not report its address in 10 s")), 10_000);
  const seen = serverLines.find((l) => l.startsWith("listening "));
  if (seen) return resolveUrl(seen.split(" ")[1]);
  onLine = (line) => {
    if (line.startsWith("listening ")) {
      clearTimeout(timer);
      resolveUrl(line.split(" ")[1]);
    }
  };
  server.on("exit", (code) => reject(new Error(`the server exited with ${code}: ${serverLines.join("\n")}`)));
}).catch((e) => fail(e.message));
console.log(`server at ${url}`);

// ---- the browser ------------------------------------------------------------------------------
const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: !headed,
  args: [
    "--no-sandbox",
    "--disable-background-networking",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
  ],
});
let exitCode = 1;
const consoleLines = [];
try {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.grantPermissions(["microphone"], { origin: new URL(url).origin });
  const page = await context.newPage();
  page.on("console", (msg) => consoleLines.push(`[${msg.type()}] ${msg.text()}`));
  page.on("pageerror", (err) => consoleLines.push(`[pageerror] ${err.message}`));
  // Only loopback traffic: refuse anything else the page might try.
  await context.route(/^https?:\/\/(?!127\.0\.0\.1|localhost)/, (route) => route.abort());

  const pageUrl = `${url}?autostart=1&id=web-smoke${transport === "websocket" ? "&transport=websocket" : ""}`;
  console.log(`opening ${pageUrl}`);
  await page.goto(pageUrl);

  const waitFor = async (name, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: TIMEOUT_MS, polling: 100 });
      check(name, true);
      return true;
    } catch {
      check(name, false, "timed out");
      return false;
    }
  };

  await waitFor("connected and ready", () => window.moqAudio?.ready === true);
  const state0 = await page.evaluate(() => window.moqAudio.state);
  check(`transport is ${transport}`, state0.transport === transport, `${state0.transport}, ${state0.version}`);

  await waitFor(
    "audio rendered in ≥ 2 generations and ≥ 1 flush measured",
    () => window.moqAudio.state.renderedGenerations.length >= 2 && window.moqAudio.flushes.length >= 1,
  );
  await waitFor("playout feedback sent", () => window.moqAudio.feedbackSent >= 10);
  await page.click("#interrupt");
  await waitFor("interrupt sent", () => window.moqAudio.controlSent >= 1);
  // Let the server print what it received.
  await new Promise((r) => setTimeout(r, 1500));

  const snapshot = await page.evaluate(() => JSON.parse(JSON.stringify(window.moqAudio)));
  const flushMs = snapshot.flushes.map((f) => f.flushToSilenceMs);
  check(
    "every flush went silent within 10 ms of the new generation reaching the worklet",
    flushMs.length > 0 && flushMs.every((ms) => ms <= 10),
    flushMs.map((ms) => `${ms.toFixed(1)} ms`).join(", "),
  );
  check("transcript shown", snapshot.state.transcript.includes("Generation"), JSON.stringify(snapshot.state.transcript));
  check("no decode errors", (snapshot.counters.decodeErrors ?? 0) === 0);

  check(
    "server received playout feedback from web-smoke",
    serverLines.some((l) => l.startsWith("feedback listener=web-smoke")),
  );
  const micExpected = snapshot.state.mic === "on";
  check(
    "server received microphone audio",
    !micExpected || serverLines.some((l) => l.startsWith("user-audio")),
    `mic ${snapshot.state.mic}${snapshot.state.micError ? ` (${snapshot.state.micError})` : ""}`,
  );
  check("server received the interrupt", serverLines.some((l) => l.startsWith("control ") && l.includes('"interrupt"')));

  const shot = join(artifacts, `smoke-${transport}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  writeFileSync(join(artifacts, `smoke-${transport}.json`), JSON.stringify(snapshot, null, 2));
  console.log(`screenshot: ${shot}`);
  console.log(
    `transport=${snapshot.state.transport} version=${snapshot.state.version} generations=${snapshot.state.renderedGenerations.join(",")} ` +
      `flush-to-silence(ms)=[${flushMs.map((x) => x.toFixed(2)).join(", ")}] ` +
      `network-to-silence(ms)=[${snapshot.flushes.map((f) => f.networkToSilenceMs.toFixed(2)).join(", ")}] ` +
      `feedback=${snapshot.feedbackSent}`,
  );
  exitCode = results.every((r) => r.ok) ? 0 : 1;
} catch (e) {
  console.error(e);
  check("smoke run", false, String(e));
} finally {
  writeFileSync(join(artifacts, `smoke-${transport}.console.log`), consoleLines.join("\n"));
  writeFileSync(join(artifacts, `smoke-${transport}.server.log`), serverLines.join("\n"));
  await browser.close().catch(() => {});
  stopServer();
}
const passed = results.filter((r) => r.ok).length;
console.log(`smoke: ${passed} passed, ${results.length - passed} failed`);
process.exit(exitCode);
