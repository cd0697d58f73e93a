/// <reference types="vitest" />
import { defineConfig, type Plugin } from "vite";
import react from "@vitejs/plugin-react";
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

/** Writes `x.js.gz` beside every script and style: the server sends it to browsers that accept gzip. */
function gzipAssets(): Plugin {
  return {
    name: "crm-gzip-assets",
    apply: "build",
    closeBundle() {
      const dir = join(__dirname, "dist", "assets");
      for (const name of readdirSync(dir)) {
        if (/\.(js|css)$/.test(name)) {
          writeFileSync(join(dir, `${name}.gz`), gzipSync(readFileSync(join(dir, name)), { level: 9 }));
        }
      }
    },
  };
}

/**
 * Puts GraphiQL (the server's page at GET /graphql) into `dist/graphiql/` from the pinned npm
 * packages, so the page needs no CDN: React's UMD builds, GraphiQL's, and `graphiql/init.js`.
 */
function graphiqlAssets(): Plugin {
  return {
    name: "crm-graphiql-assets",
    apply: "build",
    closeBundle() {
      const out = join(__dirname, "dist", "graphiql");
      mkdirSync(out, { recursive: true });
      const files: [string, string][] = [
        ["node_modules/react/umd/react.production.min.js", "react.production.min.js"],
        ["node_modules/react-dom/umd/react-dom.production.min.js", "react-dom.production.min.js"],
        ["node_modules/graphiql/graphiql.min.js", "graphiql.min.js"],
        ["node_modules/graphiql/graphiql.min.css", "graphiql.min.css"],
        ["graphiql/init.js", "init.js"],
      ];
      for (const [from, to] of files) {
        copyFileSync(join(__dirname, from), join(out, to));
        if (/\.(js|css)$/.test(to)) {
          writeFileSync(join(out, `${to}.gz`), gzipSync(readFileSync(join(out, to)), { level: 9 }));
        }
      }
    },
  };
}

// `npm run dev` serves the app with hot reload and proxies the API to a running `crm serve`
// (CRM_URL, default http://127.0.0.1:8080).
const api = process.env.CRM_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react(), gzipAssets(), graphiqlAssets()],
  server: { proxy: { "/api": api } },
  build: {
    // Every asset name carries its content hash: the server caches them for a year.
    assetsDir: "assets",
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        // React in one long-cached chunk; Ant Design is split by Rollup along the routes, so
        // Home does not load the Table that only lists need.
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom"],
        },
      },
    },
  },
  test: { environment: "node" },
});
