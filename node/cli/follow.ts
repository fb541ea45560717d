import cliProgress from "cli-progress";
import type { TaskUpdateEvent, TransportAdapter, TaskState } from "../../src/contract/types.js";

/**
 * Follow a task to its end, showing live progress: a progress bar on a terminal,
 * one plain line per update when piped (or when `quiet` output is wanted for
 * --json, nothing at all). Returns the final state.
 */
export async function followTask(adapter: TransportAdapter, taskId: string, mode: "tty" | "lines" | "quiet"): Promise<TaskState> {
  let bar: cliProgress.SingleBar | undefined;
  if (mode === "tty") {
    bar = new cliProgress.SingleBar(
      { format: " {bar} {percentage}% | {status} | {message}", hideCursor: true, clearOnComplete: false, stream: process.stderr },
      cliProgress.Presets.shades_classic,
    );
    bar.start(100, 0, { status: "pending", message: "" });
  }
  let last: TaskUpdateEvent | undefined;
  try {
    for await (const u of adapter.streamTaskUpdates(taskId)) {
      last = u;
      if (bar) bar.update(u.progress ?? (bar.getProgress() * 100), { status: u.status, message: (u.message ?? "").replace(/\s+/g, " ").slice(0, 60) });
      else if (mode === "lines") process.stderr.write(`${u.status}${u.progress === undefined ? "" : ` ${u.progress}%`}${u.message ? ` ${u.message.trimEnd()}` : ""}\n`);
    }
  } finally {
    bar?.stop();
  }
  const state = await adapter.getTaskState(taskId);
  if (!state) throw new Error(`task ${taskId} vanished (last update: ${last?.status ?? "none"})`);
  return state;
}
