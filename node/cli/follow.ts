import cliProgress from "cli-progress";
import type { TaskUpdateEvent, TransportAdapter, TaskState } from "../../src/contract/types.js";
import { terminalSafe } from "./terminal-guard.js";

/**
 * Follow a task to its end, showing live progress: a progress bar on a terminal,
 * one plain line per update when piped (or when `quiet` output is wanted for
 * --json, nothing at all). Returns the final state, or the state when `signal`
 * stopped the following.
 */
export async function followTask(adapter: TransportAdapter, taskId: string, mode: "tty" | "lines" | "quiet", signal?: AbortSignal): Promise<FollowResult> {
  let previous: string | undefined;
  const stderrShown = new Set<string>();
  // A command's stderr arrives live as `[stderr] line` updates, and its failure repeats the tail of it: each is shown once.
  const unseen = (message: string): string => {
    const cut = message.indexOf(STDERR_TAIL);
    if (cut < 0) return message;
    const tail = message.slice(cut + STDERR_TAIL.length).split("\n").filter((l) => l !== "");
    return tail.every((l) => stderrShown.has(l)) ? `${message.slice(0, cut)} (stderr above)` : message;
  };
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
    for await (const u of adapter.streamTaskUpdates(taskId, signal && { signal })) {
      last = u;
      // The message is the executor's word, shown on stderr, which the terminal guard of stdout does not cover.
      if (bar) bar.update(u.progress ?? (bar.getProgress() * 100), { status: u.status, message: terminalSafe((u.message ?? "").replace(/\s+/g, " ")).slice(0, 60) });
      else if (mode === "lines") {
        const message = u.message === undefined ? "" : unseen(u.message.trimEnd());
        for (const line of message.split("\n")) if (line.startsWith("[stderr] ")) stderrShown.add(line.slice("[stderr] ".length));
        // The update that ends a task repeats the message of the one before it (a failure's reason): once is enough.
        if (message !== "" && message === previous) continue;
        previous = message;
        process.stderr.write(terminalSafe(`${u.status}${u.progress === undefined ? "" : ` ${u.progress}%`}${message ? ` ${message}` : ""}`) + "\n");
      }
    }
  } catch (err) {
    if (!signal?.aborted) throw err;
  } finally {
    bar?.stop();
  }
  const state = await adapter.getTaskState(taskId);
  if (!state) throw new Error(`task ${taskId} vanished (last update: ${last?.status ?? "none"})`);
  const error = state.error === undefined ? undefined : unseen(state.error);
  return { state, interrupted: signal?.aborted === true, ...(error !== undefined && { error }) };
}

/** The end of a followed task; `error` is the task's error less what the progress lines already showed. */
export interface FollowResult {
  state: TaskState;
  error?: string;
  /** The signal stopped the following before the task ended. */
  interrupted: boolean;
}

const STDERR_TAIL = "; stderr ends with:\n";
