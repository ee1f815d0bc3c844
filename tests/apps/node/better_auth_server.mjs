// Better Auth with its SCIM plugin, on loopback, for tests/apps/launchers.py.
// The memory adapter holds every table the plugin declares; one static bearer
// credential (SCIM_TOKEN) is the provisioning connection's, as the plugin documents.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import { scim } from "@better-auth/scim";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { getAuthTables } from "better-auth/db";
import { toNodeHandler } from "better-auth/node";

const port = Number(process.env.PORT);
const options = {
  secret: randomBytes(32).toString("hex"),
  baseURL: `http://127.0.0.1:${port}`,
  telemetry: { enabled: false },
  plugins: [
    scim({
      connections: [
        { id: "scimsync", credentials: [{ type: "bearer", id: "tests", token: process.env.SCIM_TOKEN }] },
      ],
    }),
  ],
};
const db = {};
for (const table of Object.values(getAuthTables(options))) db[table.modelName] = [];
const auth = betterAuth({ ...options, database: memoryAdapter(db) });
createServer(toNodeHandler(auth)).listen(port, "127.0.0.1", () => {
  console.log(`better-auth listening on ${port}`);
});
