import { existsSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { AgentExecutor } from "../../src/agents/executor.js";
import { createShellAgent } from "../../src/agents/shell.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { checkWorkflow } from "../../src/workflows/index.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** What a member's agent answers: each piece would run a command of its own, were it pasted into a command line. */
const hostileOutput = (dir: string): string => `release notes $(touch ${join(dir, "by-substitution")}) \`touch ${join(dir, "by-backquotes")}\`; touch ${join(dir, "by-semicolon")} #'"`;

describe("a shell step fed by another member's output", () => {
  it("prints the member's hostile text as it is and runs none of it; a hostile value given at start likewise", async () => {
    const dir = tempDir("cc-wf-hostile-");
    cleanups.push(() => dir.remove());
    const report: AgentExecutor = {
      info: { id: "report", name: "report", description: "", capabilities: [] },
      resumable: false,
      retryable: false,
      availability: () => ({ available: true }),
      execute: async () => ({ output: hostileOutput(dir.path) }),
    };
    const started = await startNodes(2, (i) => (i === 0 ? { agents: [createShellAgent()], options: { sandbox: "off" } } : { agents: [report] }));
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [coordinator, member] = started.nodes as [CoderClawNode, CoderClawNode];
    await eventually(async () => member.security.current.grants.statements().length >= 1, 15_000, "grants in force on the member");

    const workflow = checkWorkflow({
      name: "notes",
      steps: [
        { id: "notes", agent: "report", target: `remote:${member.peerId}`, input: "notes" },
        { id: "print", agent: "shell", dependsOn: ["notes"], input: "printf '%s\\n' ${steps.notes.output} ${input.title}" },
      ],
    });
    const title = `$(touch ${join(dir.path, "by-input")})`;
    const { id } = await coordinator.workflows.startChecked(workflow, { title });
    await eventually(async () => (await coordinator.workflows.get(id))?.status !== "running", 30_000, "the workflow ended");
    const done = (await coordinator.workflows.get(id))!;
    for (const marker of ["by-substitution", "by-backquotes", "by-semicolon", "by-input"]) expect(existsSync(join(dir.path, marker)), marker).toBe(false);
    expect(done.status, done.error).toBe("completed");
    expect(done.steps.print!.output).toBe(`${hostileOutput(dir.path)}\n${title}\n`);
  }, 60_000);
});
