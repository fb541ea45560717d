import { writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { loadAgentRegistry } from "../../src/agents/registry.js";
import { hasCode } from "../../src/contract/errors.js";
import type { TaskState } from "../../src/contract/types.js";
import { isTerminal } from "../../src/engine/state-machine.js";
import { openLocalCore, type LocalCore } from "../../src/runtime/local-core.js";
import { pidAlive, tempDir, waitFor } from "./helpers.js";

let dir: { path: string; cleanup: () => void };
let core: LocalCore;
beforeEach(async () => {
  dir = tempDir("engine");
  const project = join(dir.path, "project");
  mkdirSync(join(project, ".coderClaw"), { recursive: true });
  writeFileSync(
    join(project, ".coderClaw", "runtime.yaml"),
    ["agents:", "  - id: claude", "    name: Claude Code", "    description: d", "    capabilities: [code-creation]", "    command: [claude-absent, -p, '{input}']", "    input: arg"].join("\n"),
  );
  const dataDir = join(dir.path, "data");
  core = await openLocalCore({ dataDir, agents: loadAgentRegistry({ dataDir, workspaceDir: project, env: { PATH: process.env["PATH"] } }) });
});
afterEach(async () => {
  await core.close();
  dir.cleanup();
});

async function settled(taskId: string): Promise<TaskState> {
  for (let i = 0; i < 500; i++) {
    const task = await core.engine.getTask(taskId);
    if (task !== null && isTerminal(task.status)) return task;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`task ${taskId} did not finish`);
}

describe("agents in the task engine", () => {
  it("runs a shell task to completion with its lines in the history", async () => {
    const task = await core.engine.submit({ description: "greet", input: "echo hello; echo oops >&2", agentId: "shell" });
    const done = await settled(task.id);
    expect(done.status).toBe("completed");
    expect(done.output).toBe("hello\n");
    const streamed = (await core.engine.getTaskEvents(task.id))
      .filter((e) => e.type === "output_added")
      .map((e) => e.message ?? "")
      .join("");
    expect(streamed.split("\n").sort()).toEqual(["", "[stderr] oops", "hello"]);
  });

  it("fails a non-zero exit with the exit code", async () => {
    const task = await core.engine.submit({ description: "fail", input: "echo broken >&2; exit 4", agentId: "shell" });
    const done = await settled(task.id);
    expect(done.status).toBe("failed");
    expect(done.error).toContain("exited with code 4");
    expect(done.error).toContain("broken");
  });

  it("refuses at once a submit to an agent whose binary is missing, with the reason", async () => {
    const err = await core.engine.submit({ description: "d", input: "x", agentId: "claude" }).catch((e: unknown) => e);
    expect(hasCode(err, "AGENT_UNAVAILABLE")).toBe(true);
    expect((err as Error).message).toBe("agent claude: binary not found on PATH: claude-absent");
  });

  it("cancel through the engine kills the task's process tree", async () => {
    const task = await core.engine.submit({ description: "long", input: "sleep 30 & echo $!; wait", agentId: "shell" });
    let grandchild = 0;
    expect(
      await waitFor(() => {
        void core.engine.getTaskEvents(task.id).then((events) => {
          const line = events.find((e) => e.type === "output_added" && /^\d+$/.test((e.message ?? "").trim()));
          if (line !== undefined) grandchild = Number(line.message);
        });
        return grandchild > 0;
      }, 10_000),
    ).toBe(true);
    expect(pidAlive(grandchild)).toBe(true);
    expect(await core.engine.cancel(task.id)).toBe(true);
    expect((await settled(task.id)).status).toBe("cancelled");
    expect(await waitFor(() => !pidAlive(grandchild), 5_000)).toBe(true);
  });
});
