import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { StringDecoder } from "node:string_decoder";
import { CoderClawError } from "../contract/errors.js";
import { ExecutionFailedError, abortError } from "./errors.js";
import { findOnPath } from "./path-lookup.js";
import type { ProcessRecords } from "./process-records.js";
import { DEFAULT_OUTPUT_LIMIT, HeadTailBuffer } from "./output-limit.js";

/** How long a process group gets between SIGTERM and SIGKILL. */
export const DEFAULT_KILL_GRACE_MS = 2_000;

/** A line longer than this many characters is passed on in pieces, so one endless line cannot hold memory. */
export const MAX_LINE_CHARS = 64 * 1024;

/** Which stream a line came from. */
export type StreamName = "stdout" | "stderr";

/** Inputs of {@link runProcess}. */
export interface RunProcessOptions {
  /** Program (a path or a name looked up in `env.PATH`) and its arguments; no shell is involved. */
  argv: readonly [string, ...string[]];
  cwd: string;
  /** The complete environment of the process: nothing is inherited. */
  env: Record<string, string>;
  /** Written to stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** Aborting kills the process group and rejects with the abort's typed error. */
  signal: AbortSignal;
  /** Kill the process group and reject with TIMEOUT after this many ms. */
  timeoutMs?: number;
  killGraceMs?: number;
  /** Bytes kept of each of stdout and stderr (head and tail). */
  outputLimitBytes?: number;
  /** Called for each complete line (without its newline), and for the unterminated rest at the end. */
  onLine?: (stream: StreamName, line: string) => void;
  /** Where the process group is recorded while it runs, so the next start can stop it if this node dies. */
  records?: ProcessRecords;
}

/** How a process ended. */
export interface RunProcessResult {
  exitCode: number | null;
  exitSignal: NodeJS.Signals | null;
  stdout: HeadTailBuffer;
  stderr: HeadTailBuffer;
  pid: number;
}

const SETPRIV = "/usr/bin/setpriv";
const hasSetpriv = process.platform === "linux" && existsSync(SETPRIV);

/**
 * `argv` made to die with this process where Linux allows it: a group leader
 * that outlived a SIGKILLed node would go on with its side effects (a shell
 * line's next command) until the next start reaps its group, after the task was
 * already recorded as interrupted, so a retry would do them twice. A sandboxed
 * run (bubblewrap's --die-with-parent) needs no wrapper.
 */
function dyingWithParent(argv: readonly [string, ...string[]], env: Record<string, string>): [string, ...string[]] {
  const [program, ...args] = argv;
  // A program that cannot be found is spawned as it is, so the failure to start reads as one.
  const found = hasSetpriv && !program.endsWith("/bwrap") && program !== "bwrap" ? findOnPath(program, env.PATH) : undefined;
  return found === undefined ? [...argv] : [SETPRIV, "--pdeathsig", "KILL", "--", found, ...args];
}

/**
 * Run a program in its own process group and wait until it and its output are
 * done.
 *
 * The group matters: a shell's children (and theirs) share it, so cancel,
 * timeout and cleanup reach the whole tree with one `kill(-pgid)`. Resolves with
 * the exit status whatever it is; rejects only when the process could not start
 * (UNAVAILABLE), timed out (TIMEOUT) or was aborted (the signal's reason).
 */
export function runProcess(options: RunProcessOptions): Promise<RunProcessResult> {
  const { signal } = options;
  if (signal.aborted) return Promise.reject(abortError(signal));
  const limit = options.outputLimitBytes ?? DEFAULT_OUTPUT_LIMIT;
  const grace = options.killGraceMs ?? DEFAULT_KILL_GRACE_MS;
  const stdout = new HeadTailBuffer(limit);
  const stderr = new HeadTailBuffer(limit);
  const [program] = options.argv;
  const [spawned, ...spawnArgs] = dyingWithParent(options.argv, options.env);

  return new Promise<RunProcessResult>((resolve, reject) => {
    const child = spawn(spawned, spawnArgs, {
      cwd: options.cwd,
      env: options.env,
      detached: true,
      stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const { records } = options;
    const recorded = child.pid;
    let failure: CoderClawError | undefined;
    let killTimer: NodeJS.Timeout | undefined;
    let settled = false;

    const killGroup = (sig: NodeJS.Signals): void => {
      if (child.pid === undefined) return;
      try {
        process.kill(-child.pid, sig);
      } catch {
        // ESRCH: the group is already gone, which is what we wanted.
      }
    };
    const stop = (why: CoderClawError): void => {
      if (failure !== undefined) return;
      failure = why;
      killGroup("SIGTERM");
      killTimer = setTimeout(() => killGroup("SIGKILL"), grace);
      killTimer.unref();
    };
    if (records !== undefined && recorded !== undefined) {
      try {
        records.record(recorded);
      } catch (err) {
        // A group we could not record would outlive a crash unseen: it does not get to run.
        stop(new ExecutionFailedError(`could not record process ${recorded}: ${(err as Error).message}`, { cause: err }));
        killGroup("SIGKILL");
      }
    }
    const onAbort = (): void => stop(abortError(signal));
    signal.addEventListener("abort", onAbort, { once: true });
    const timeoutTimer =
      options.timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => stop(new CoderClawError("TIMEOUT", `${program} did not finish within ${options.timeoutMs} ms and was killed`)),
            options.timeoutMs,
          );

    const finish = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      signal.removeEventListener("abort", onAbort);
      if (timeoutTimer !== undefined) clearTimeout(timeoutTimer);
      if (killTimer !== undefined) clearTimeout(killTimer);
      outcome();
    };

    const pipeLines = (name: StreamName, buffer: HeadTailBuffer, stream: NodeJS.ReadableStream | null): void => {
      if (stream === null) return;
      const decoder = new StringDecoder("utf8");
      let pending = "";
      const emit = (line: string): void => {
        if (options.onLine === undefined || failure !== undefined) return;
        try {
          options.onLine(name, line);
        } catch (err) {
          // A throw here would escape as an uncaught exception from a stream
          // event and take the node down; it fails this run instead.
          stop(err instanceof CoderClawError ? err : new CoderClawError("UNAVAILABLE", `output handler failed: ${String(err)}`, { cause: err }));
        }
      };
      stream.on("data", (chunk: Buffer) => {
        buffer.append(chunk);
        if (options.onLine === undefined) return;
        pending += decoder.write(chunk);
        let start = 0;
        for (let nl = pending.indexOf("\n", start); nl !== -1; nl = pending.indexOf("\n", start)) {
          emit(pending.slice(start, nl));
          start = nl + 1;
        }
        pending = pending.slice(start);
        while (pending.length > MAX_LINE_CHARS) {
          emit(pending.slice(0, MAX_LINE_CHARS));
          pending = pending.slice(MAX_LINE_CHARS);
        }
      });
      stream.on("end", () => {
        pending += decoder.end();
        if (pending.length > 0) emit(pending);
        pending = "";
      });
    };
    pipeLines("stdout", stdout, child.stdout);
    pipeLines("stderr", stderr, child.stderr);

    if (options.stdin !== undefined && child.stdin !== null) {
      // A program that exits without reading its stdin makes the write fail with
      // EPIPE; its exit status is what tells the story, not the pipe.
      child.stdin.on("error", () => undefined);
      child.stdin.end(options.stdin);
    }

    child.on("error", (err: NodeJS.ErrnoException) => {
      // spawn reports a missing working directory as ENOENT, as if the program were missing.
      const why = err.code === "ENOENT" && !existsSync(options.cwd) ? `working directory ${options.cwd} does not exist` : (err.code ?? err.message);
      finish(() => reject(new ExecutionFailedError(`could not start ${program}: ${why}`, { cause: err })));
    });
    child.on("exit", () => {
      // The leader is gone; anything left in its group (a backgrounded child
      // holding our pipes open) would keep 'close' from ever firing and outlive
      // the task, so it goes too.
      killGroup("SIGKILL");
    });
    child.on("close", (code, sig) => {
      if (records !== undefined && recorded !== undefined) records.release(recorded);
      finish(() => {
        if (failure !== undefined) reject(failure);
        else resolve({ exitCode: code, exitSignal: sig, stdout, stderr, pid: child.pid ?? -1 });
      });
    });
  });
}
