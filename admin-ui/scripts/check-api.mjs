// Fails when the checked-in openapi.json differs from the document the server produces
// (`crm openapi`), or when schema.d.ts is stale against openapi.json. CRM_BIN names the
// binary (default: `cargo run -q -- openapi` from the repository root).
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

const served = process.env.CRM_BIN
  ? execFileSync(process.env.CRM_BIN, ["openapi"], { encoding: "utf8", maxBuffer: 64 << 20 })
  : execFileSync("cargo", ["run", "-q", "--", "openapi"], {
      cwd: "..",
      encoding: "utf8",
      maxBuffer: 64 << 20,
    });
const checkedIn = readFileSync("openapi.json", "utf8");
if (served.trim() !== checkedIn.trim()) {
  console.error(
    "admin-ui/openapi.json differs from the server's document: run `crm openapi > admin-ui/openapi.json && npm run gen:api`, then `npm run typecheck`",
  );
  process.exit(1);
}
console.log("admin-ui/openapi.json matches the server");
