import { defineConfig } from "vite";

// Relative asset URLs: dist/ is served from any directory by the test (moq_audio.Server's
// static_dir). public/tap-worklet.js is copied as is (an AudioWorklet module).
export default defineConfig({
  base: "./",
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    rollupOptions: {
      onwarn(warning, warn) {
        if (warning.code === "INVALID_ANNOTATION") return;
        warn(warning);
      },
    },
  },
});
