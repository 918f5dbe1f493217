// Bundle one of the page's TypeScript modules in memory with esbuild (a Vite dependency) and import
// it, so node --test can unit-test the pure modules without a browser.

import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const src = join(dirname(fileURLToPath(import.meta.url)), "../src");

/** Import `web-demo/src/<name>` (e.g. "loc.ts") bundled with its dependencies. */
export async function importSrc(name) {
  const bundled = await build({ entryPoints: [join(src, name)], bundle: true, format: "esm", write: false, target: "es2022", platform: "neutral" });
  return import(`data:text/javascript;base64,${Buffer.from(bundled.outputFiles[0].text).toString("base64")}`);
}
