import { defineConfig } from "vite";

// The page is served by moq-audio's embedded server (static files from dist/), so asset URLs
// are relative and the AudioWorklet processor is emitted as its own file (see player.ts).
export default defineConfig({
  base: "./",
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    rollupOptions: {
      // zod (a peer of @moq/net) carries /* @__PURE__ */ comments Rollup cannot place: harmless.
      onwarn(warning, warn) {
        if (warning.code === "INVALID_ANNOTATION") return;
        warn(warning);
      },
    },
  },
  worker: { format: "es" },
});
