import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setImmediate as turn } from "node:timers/promises";
import { StaticAgentRegistry } from "../src/agents/builtin.js";
import type { AgentExecutor } from "../src/agents/executor.js";
import { TaskEngine } from "../src/engine/task-engine.js";
import { LevelTaskRepository } from "../src/engine/task-repository.js";
import { openDatabase } from "../src/storage/level-database.js";
import { LevelDocumentStore } from "../src/storage/level-document-store.js";

/** Reports `reports` bare progress values, a few per turn of the event loop (as a streaming agent does), then ends. */
function chatty(reports: number): AgentExecutor {
  return {
    info: { id: "chatty", name: "chatty", description: "", capabilities: [] },
    resumable: false,
    retryable: false,
    availability: () => ({ available: true }),
    execute: async (ctx) => {
      for (let i = 1; i <= reports; i++) {
        ctx.progress((i * 100) / reports);
        if (i % 4 === 0) await turn();
      }
      return { output: "done" };
    },
  };
}

/**
 * CPU time per progress report and history entries kept, of one task reporting
 * `reports` bare values with no subscriber, its progress coalesced in windows
 * of `coalesceMs` (0: each recorded at once, as before coalescing).
 */
export async function progressCost(reports: number, coalesceMs: number): Promise<{ coalesceMs: number; reports: number; cpuUsPerReport: number; historyEntries: number }> {
  const dir = mkdtempSync(join(tmpdir(), "cc-bench-progress-"));
  const db = await openDatabase(dir);
  try {
    const repository = await LevelTaskRepository.open(db, new LevelDocumentStore(db, { path: dir }));
    const engine = await TaskEngine.open({ repository, agents: new StaticAgentRegistry([chatty(reports)]), dataDir: dir, progressCoalesceMs: coalesceMs });
    const cpu0 = process.cpuUsage();
    const task = await engine.submit({ description: "chatty", input: "", agentId: "chatty" });
    // No subscriber: what each report costs the engine alone.
    await engine.idle();
    const cpu = process.cpuUsage(cpu0);
    const historyEntries = (await engine.getTaskEvents(task.id)).length;
    await engine.shutdown();
    return { coalesceMs, reports, cpuUsPerReport: Math.round(((cpu.user + cpu.system) / reports) * 10) / 10, historyEntries };
  } finally {
    await db.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
