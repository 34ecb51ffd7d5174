// Builds the web UI into <repo>/dist/web, which the broker serves (WEB_DIR). `vite build --outDir` overrides it.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  publicDir: false,
  build: {
    outDir: fileURLToPath(new URL('../../dist/web', import.meta.url)),
    // The outDir lies outside the root: Vite empties it only when told to.
    emptyOutDir: true,
    // The broker's CSP allows scripts and styles from 'self' only: nothing inline, no polyfill snippets.
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
  },
});
