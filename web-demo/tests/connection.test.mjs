// Unit tests of the page's server URL and token handling (src/connection.ts): the token reaches
// the server only as ?jwt= on the connect URL, and never the text the page shows or logs.
// Run: npm test (node --test tests/).

import assert from "node:assert/strict";
import { test } from "node:test";
import { importSrc } from "./bundle.mjs";

globalThis.location ??= new URL("http://127.0.0.1:4443/index.html?x=1");
const { serverTarget, connectUrl, redact, redactConsole } = await importSrc("connection.ts");
const params = (q) => new URLSearchParams(q);

test("default: the page's own origin, no token", () => {
  const t = serverTarget(params(""));
  assert.equal(t.url.toString(), "http://127.0.0.1:4443/");
  assert.equal(t.token, null);
  assert.equal(connectUrl(t).toString(), "http://127.0.0.1:4443/");
});

test("?url= (or the older ?relay=) and ?token= → the connect URL carries ?jwt=, the shown URL does not", () => {
  // A JWT is base64url (no characters a query string would change); others must come encoded.
  const jwt = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJ3ZWIifQ.MEUCIQ-x_y";
  const t = serverTarget(params(`url=https://relay.example.net:4443/anon&token=${jwt}&broadcast=bot`));
  assert.equal(t.url.toString(), "https://relay.example.net:4443/anon");
  assert.equal(t.token, jwt);
  assert.equal(serverTarget(params(`token=${encodeURIComponent("a+b/c=")}`)).token, "a+b/c=");
  const u = connectUrl(t);
  assert.equal(u.searchParams.get("jwt"), jwt);
  assert.equal(u.origin + u.pathname, "https://relay.example.net:4443/anon");
  assert.equal(serverTarget(params("relay=http://10.0.0.1:4443/")).url.toString(), "http://10.0.0.1:4443/");
  // A jwt already inside the URL is moved out of what is shown.
  const inner = serverTarget(params(`url=${encodeURIComponent("https://r.example/?jwt=SECRET&x=1")}`));
  assert.deepEqual([inner.url.toString(), inner.token], ["https://r.example/?x=1", "SECRET"]);
  assert.throws(() => serverTarget(params("url=ws://r.example/")), /http:\/\/ .* or https:\/\//);
});

test("the token is redacted from text and from console output, raw or URL-encoded", () => {
  const token = "eyJ.a+b/c=";
  const url = connectUrl({ url: new URL("https://r.example/"), token }).toString();
  assert.ok(!redact(`failed to connect to ${url}`, token).includes("a+b"), redact(url, token));
  assert.equal(redact(`x ${token} y`, token), "x <token> y");
  const seen = [];
  const original = console.warn;
  console.warn = (...args) => seen.push(args.join(" "));
  try {
    redactConsole(token);
    console.warn(url, "connected via WebSocket");
    console.warn(new URL(url));
  } finally {
    // redactConsole wrapped our stub; restoring the original drops the wrapper too.
    console.warn = original;
  }
  assert.equal(seen.length, 2);
  for (const line of seen) assert.ok(!line.includes("a+b") && !line.includes(encodeURIComponent(token)), line);
  assert.ok(seen[0].includes("jwt=<token>"), seen[0]);
});
