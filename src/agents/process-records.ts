import { closeSync, fsyncSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/**
 * Durable records of the process groups agents started, so that a node killed
 * without a chance to stop them (SIGKILL, power loss) can stop them at its next
 * start instead of leaving them running unsupervised.
 */
export interface ProcessRecords {
  /** Record a group leader just spawned (its pid is the group id); synchronous, so nothing runs before it is on disk. */
  record(pid: number): void;
  /** Forget a group once it is gone. */
  release(pid: number): void;
  /**
   * SIGKILL every group recorded by a previous run whose leader is still the
   * process that was started (same start time), and forget all records.
   * Returns the pids killed.
   */
  reapLeftovers(): number[];
}

/**
 * When the process started, in clock ticks since boot, from `/proc/<pid>/stat`;
 * undefined when there is no such process (or no /proc). Together with the pid it
 * names one process: a reused pid has a later start time.
 */
export function processStartTime(pid: number): string | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // The command name (field 2) may contain spaces and parentheses: fields are counted after its last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[19];
}

/** Records kept as one small file per running group under `dir` (e.g. `<dataDir>/run/processes`). */
export function createProcessRecords(dir: string): ProcessRecords {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const fileOf = (pid: number): string => join(dir, String(pid));
  return {
    record(pid) {
      const startTime = processStartTime(pid);
      const fd = openSync(fileOf(pid), "w", 0o600);
      try {
        writeSync(fd, JSON.stringify({ pid, startTime: startTime ?? null }));
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    },
    release(pid) {
      rmSync(fileOf(pid), { force: true });
    },
    reapLeftovers() {
      const killed: number[] = [];
      for (const name of readdirSync(dir)) {
        const file = join(dir, name);
        let record: { pid?: unknown; startTime?: unknown };
        try {
          record = JSON.parse(readFileSync(file, "utf8")) as typeof record;
        } catch {
          // A record cut short by the crash it is meant to clean up after names no process we can verify.
          rmSync(file, { force: true });
          continue;
        }
        const { pid, startTime } = record;
        // Without a start time to compare, the pid may belong to someone else by now: leave it alone.
        if (Number.isSafeInteger(pid) && (pid as number) > 1 && typeof startTime === "string" && processStartTime(pid as number) === startTime) {
          try {
            process.kill(-(pid as number), "SIGKILL");
            killed.push(pid as number);
          } catch {
            // ESRCH: the group ended meanwhile.
          }
        }
        rmSync(file, { force: true });
      }
      return killed;
    },
  };
}
