import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ExecutionContext } from "../../src/agents/executor.js";
import type { TaskSubmitRequest } from "../../src/contract/types.js";

/** A real execution context recording what the executor reports. */
export interface RecordingContext extends ExecutionContext {
  outputs: string[];
  progressEvents: Array<{ progress: number; message?: string }>;
  controller: AbortController;
}

export function makeContext(request: Partial<TaskSubmitRequest> & { input: string }, workspace: string): RecordingContext {
  const controller = new AbortController();
  const outputs: string[] = [];
  const progressEvents: Array<{ progress: number; message?: string }> = [];
  return {
    taskId: "task-1",
    request: { description: "test task", ...request },
    workspace,
    signal: controller.signal,
    controller,
    outputs,
    progressEvents,
    progress(progress, message) {
      progressEvents.push(message === undefined ? { progress } : { progress, message });
    },
    output(chunk) {
      outputs.push(chunk);
    },
    checkpoint() {
      return Promise.resolve();
    },
  };
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `coderclaw-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * True while a process with this pid runs. A zombie counts as gone: it is dead
 * and only waits for its new parent (init here, which reaps lazily) to collect it.
 */
export function pidAlive(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return false;
  }
  // The state letter follows the parenthesised command name, which may hold spaces.
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  return state !== "Z" && state !== "X";
}

/** Poll `check` every 20 ms until it holds or `ms` passed. */
export async function waitFor(check: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 20));
  }
  return check();
}
