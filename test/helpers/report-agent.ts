import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { AgentExecutor } from "../../src/agents/executor.js";

/** Agent `report`: writes `out/report.txt` in its workspace (what `report` makes of the workspace), changing nothing else. */
export function reportAgent(report: (workspace: string) => string): AgentExecutor {
  return {
    info: { id: "report", name: "report", description: "", capabilities: [] },
    resumable: false,
    retryable: false,
    availability: () => ({ available: true }),
    execute: async (ctx) => {
      mkdirSync(join(ctx.workspace, "out"), { recursive: true });
      writeFileSync(join(ctx.workspace, "out", "report.txt"), report(ctx.workspace));
      return { output: "reported" };
    },
  };
}
