import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/** `--fields` on listing commands: a local home for tasks and agents, a running node for devices and peers. */

const cleanups: Array<() => unknown> = [];
let home: string;
let taskId: string;

beforeAll(async () => {
  assertBuilt();
  const h = tempDir("cc-fields-");
  cleanups.push(h.remove);
  home = h.path;
  const r = await runCli(["task", "submit", "hello fields", "--agent", "echo", "--wait", "--json"], home);
  expect(r.code).toBe(0);
  taskId = (JSON.parse(r.stdout) as { id: string }).id;
}, 60_000);
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("--fields", () => {
  it("prints one tab-separated line per row, without a table", async () => {
    const r = await runCli(["task", "list", "--fields", "id,status,agentId"], home);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(`${taskId}\tcompleted\techo\n`);
  });

  it("with --json prints only those fields", async () => {
    const r = await runCli(["agents", "--json", "--fields", "id,available"], home);
    expect(r.code).toBe(0);
    const rows = JSON.parse(r.stdout) as Array<Record<string, unknown>>;
    expect(rows.find((a) => a.id === "echo")).toEqual({ id: "echo", available: true });
    for (const row of rows) expect(Object.keys(row)).toEqual(["id", "available"]);
  });

  it("refuses a field no row has, listing the fields there are, and a malformed list", async () => {
    const missing = await runCli(["task", "list", "--fields", "id,stauts"], home);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no row has "stauts"; fields: ');
    expect(missing.stderr).toContain("status");
    expect(missing.stdout).toBe("");
    const malformed = await runCli(["agents", "--fields", "id,,available"], home);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('--fields: "" is not a field name');
  });

  it("works on devices list, peers, roles list, audit query, workflow list and approvals list of a running node", async () => {
    const h = tempDir("cc-fields-node-");
    cleanups.push(h.remove);
    expect((await runCli(["mesh", "create", "--name", "fields"], h.path)).code).toBe(0);
    const node = await startCli(["start", "--no-mdns"], h.path, /control socket/);
    cleanups.push(() => node.stop());
    const id = (JSON.parse((await runCli(["id", "--json"], h.path)).stdout) as { deviceId: string }).deviceId;
    const devices = await runCli(["devices", "list", "--fields", "deviceId,level,self"], h.path);
    expect(devices.code).toBe(0);
    expect(devices.stdout).toBe(`${id}\ttrusted\ttrue\n`);
    const peers = await runCli(["peers", "--json", "--fields", "peerId"], h.path);
    expect(peers.code).toBe(0);
    expect(JSON.parse(peers.stdout)).toEqual([]);
    // The other listings too: roles, audit entries (dotted into their body), workflows and approvals.
    expect((await runCli(["roles", "list", "--fields", "subject,roles"], h.path)).stdout).toBe(`${id}\tadmin\n`);
    const audit = JSON.parse((await runCli(["audit", "query", "--action", "mesh.create", "--json", "--fields", "author,body.action"], h.path)).stdout) as unknown[];
    expect(audit).toEqual([{ author: id, "body.action": "mesh.create" }]);
    for (const listing of [["workflow", "list"], ["approvals", "list"]]) {
      const r = await runCli([...listing, "--json", "--fields", "id"], h.path);
      expect([r.code, r.stdout.trim()], listing.join(" ")).toEqual([0, "[]"]);
    }
    // One-object commands print one row.
    expect((await runCli(["status", "--fields", "running,reachedThrough"], h.path)).stdout).toBe("true\tnode\n");
    const mesh = await runCli(["mesh", "status", "--json", "--fields", "meshId"], h.path);
    expect(mesh.code, mesh.stderr).toBe(0);
    expect(Object.keys((JSON.parse(mesh.stdout) as Array<Record<string, unknown>>)[0]!)).toEqual(["meshId"]);
  }, 60_000);

  it("works on config show: dotted paths into the effective configuration", async () => {
    const r = await runCli(["config", "show", "--fields", "config.mode,config.relay"], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe("local-only\tfalse\n");
  });

  it("works on task show", async () => {
    const r = await runCli(["task", "show", taskId.slice(0, 8), "--fields", "id,status"], home);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toBe(`${taskId}\tcompleted\n`);
  });
});
