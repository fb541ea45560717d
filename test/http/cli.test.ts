import { execFile } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, startServer } from "./helpers.js";

// The built CLI (npm test builds first), run as CI runs it: a separate process
// talking to the node over HTTP.
const CLI = join(process.cwd(), "dist", "node", "cli", "main.js");

function coderclaw(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, CODERCLAW_HOME: "/nonexistent-coderclaw-home", ...env }, timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

describe("coderclaw task submit --wait --json --server against the HTTP API", () => {
  let engine: Engine;
  let server: HttpServer;

  beforeAll(async () => {
    expect(existsSync(CLI), `${CLI} missing: run npx tsc -p tsconfig.json`).toBe(true);
    engine = await openEngine();
    server = await startServer(engine.adapter);
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("exits 0 with the completed task as JSON when the task completes", async () => {
    const run = await coderclaw(["task", "submit", "ship it", "--agent", "echo", "--wait", "--json", "--server", server.url, "--token", TOKENS.alice]);
    expect(run.code, run.stderr).toBe(0);
    const task = JSON.parse(run.stdout) as { id: string; status: string; output: string; sessionId: string };
    expect(task).toMatchObject({ status: "completed", output: "ship it", sessionId: "s-alice" });
    expect((await engine.adapter.getTaskState(task.id))?.status).toBe("completed");
  });

  it("exits 1 when the task fails, taking the token from CODERCLAW_TOKEN", async () => {
    const run = await coderclaw(["task", "submit", "not-a-duration", "--agent", "sleep", "--wait", "--json", "--server", server.url], { CODERCLAW_TOKEN: TOKENS.alice });
    expect(run.code, run.stderr).toBe(1);
    expect(JSON.parse(run.stdout)).toMatchObject({ status: "failed" });
  });

  it("exits non-zero without running anything when the token is refused", async () => {
    const before = (await engine.adapter.getStatus()).totalTasks;
    const run = await coderclaw(["task", "submit", "x", "--agent", "echo", "--wait", "--json", "--server", server.url, "--token", TOKENS.expired]);
    expect(run.code).not.toBe(0);
    expect(run.code).not.toBe(1);
    expect(run.stderr).toMatch(/expired/);
    expect((await engine.adapter.getStatus()).totalTasks).toBe(before);
  });
});
