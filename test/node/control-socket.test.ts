import { readFileSync, statSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { fileURLToPath } from "node:url";
import { exitCodeFor } from "../../node/cli/exit-codes.js";
import { HELLO_TIMEOUT_MS } from "../../node/control/control-server.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { assertBuilt, runCli, runScript, startCli } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

function home(): string {
  const d = tempDir("cc-ctl-");
  cleanups.push(() => d.remove());
  return d.path;
}

/** Write raw bytes to a Unix socket and collect what comes back until the peer closes. */
function exchange(path: string, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    let got = "";
    socket.on("data", (d: Buffer) => (got += d.toString()));
    socket.on("error", reject);
    socket.on("close", () => resolve(got));
    socket.on("connect", () => socket.write(bytes));
  });
}

describe("the control socket of a running node", () => {
  it("survives a wrong hello followed by more lines in the same write", { timeout: 60_000 }, async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    const bad = `${JSON.stringify({ type: "hello", token: "wrong" })}\n${JSON.stringify({ id: 1, method: "getStatus" })}\nnot json\n`;
    const answer = await exchange(`${h}/control.sock`, bad);
    expect(answer.trim().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual([{ type: "hello", ok: false, error: "bad control token" }]);
    await new Promise((r) => setTimeout(r, 300));
    expect(node.child.exitCode).toBeNull();
    const status = await runCli(["status", "--json"], h);
    expect(JSON.parse(status.stdout)).toMatchObject({ healthy: true, reachedThrough: "node" });
  });

  it("closes a connection that never says hello, and keeps its token file 0600 whatever a file left there had", { timeout: 60_000 }, async () => {
    const h = home();
    // Left by a node killed before it removed it, with a mode of its own.
    writeFileSync(`${h}/control.token`, "old\n", { mode: 0o644 });
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    expect(statSync(`${h}/control.token`).mode & 0o777).toBe(0o600);
    const started = Date.now();
    expect(await exchange(`${h}/control.sock`, "")).toBe("");
    expect(Date.now() - started).toBeLessThan(HELLO_TIMEOUT_MS + 3000);
    expect(node.child.exitCode).toBeNull();
    // One that said hello stays open past that time, as a CLI following a task does.
    const token = readFileSync(`${h}/control.token`, "utf8").trim();
    const socket = connect(`${h}/control.sock`);
    cleanups.push(() => socket.destroy());
    const lines: string[] = [];
    socket.on("data", (d: Buffer) => lines.push(...d.toString().split("\n").filter((l) => l !== "")));
    socket.write(`${JSON.stringify({ type: "hello", token })}\n`);
    await new Promise((r) => setTimeout(r, HELLO_TIMEOUT_MS + 1000));
    socket.write(`${JSON.stringify({ id: 1, method: "getStatus" })}\n`);
    await eventually(async () => lines.length === 2, 5000, "the status answered");
    expect(JSON.parse(lines[1]!)).toMatchObject({ id: 1, result: { healthy: true } });
  });
});

describe("ControlClientAdapter when the node dies mid-request", () => {
  it("rejects every pending and later call as unreachable, and its host process lives on", { timeout: 30_000 }, async () => {
    const dir = home();
    const fixture = fileURLToPath(new URL("../fixtures/control-client-reset.mjs", import.meta.url));
    const r = await runScript(fixture, [dir], 20_000);
    expect(r.stderr).not.toContain("ECONNRESET\n");
    expect(r.code).toBe(0);
    const { results, after } = JSON.parse(r.stdout) as { results: Array<{ code: string; message: string }>; after: { code: string; message: string } };
    for (const ended of [...results, after]) {
      expect(ended.code).toBe("UNAVAILABLE");
      expect(ended.message).toMatch(/control connection (lost|closed).*node/);
      expect(exitCodeFor(new CoderClawError("UNAVAILABLE", ended.message))).toBe(3);
    }
  });
});
