/// <reference types="vitest" />
import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` serves the app with hot reload and proxies the API to a running `crm serve`
// (CRM_URL, default http://127.0.0.1:8080).
const api = process.env.CRM_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: { proxy: { "/api": api } },
  build: {
    // Every asset name carries its content hash: the server caches them for a year.
    assetsDir: "assets",
    chunkSizeWarningLimit: 1200,
    rollupOptions: {
      output: {
        manualChunks: {
          react: ["react", "react-dom", "react-router-dom"],
          antd: ["antd", "@ant-design/icons"],
        },
      },
    },
  },
  test: { environment: "node" },
});
