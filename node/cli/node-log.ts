import { closeSync, existsSync, fstatSync, mkdirSync, openSync, renameSync, writeSync } from "node:fs";
import { join } from "node:path";
import { pino, type Logger } from "pino";

/** The levels `--log-level` accepts, quietest last. */
export const LOG_LEVELS = ["trace", "debug", "info", "warn", "error", "fatal", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The node's log file in its data directory; the previous one is `node.log.1`. */
export function logPaths(dataDir: string): { current: string; previous: string } {
  const current = join(dataDir, "node.log");
  return { current, previous: `${current}.1` };
}

/**
 * A file that holds at most about `maxBytes`: past that the file becomes
 * `node.log.1` (replacing the one before) and a new file starts, so a node that
 * runs for months keeps at most two files. Writes are synchronous: a node logs
 * one line per event, and a crash must not lose the lines that explain it.
 */
function boundedFile(path: string, previous: string, maxBytes: number): { write(line: string): void; close(): void } {
  let fd = openSync(path, "a", 0o600);
  let size = fstatSync(fd).size;
  const rotate = (): void => {
    closeSync(fd);
    renameSync(path, previous);
    fd = openSync(path, "a", 0o600);
    size = 0;
  };
  if (size > maxBytes) rotate();
  return {
    write(line: string): void {
      const bytes = Buffer.byteLength(line);
      if (size > 0 && size + bytes > maxBytes) rotate();
      writeSync(fd, line);
      size += bytes;
    },
    close: () => closeSync(fd),
  };
}

/** Open the node's structured log (pino, one JSON object per line) in `dataDir`. */
export function openNodeLog(options: { dataDir: string; level: LogLevel; maxBytes: number }): { logger: Logger; close(): void } {
  const { current, previous } = logPaths(options.dataDir);
  // A first start on a new home opens its log before the node creates the directory.
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const file = boundedFile(current, previous, options.maxBytes);
  const logger = pino({ level: options.level, base: { pid: process.pid } }, { write: (line: string) => file.write(line) });
  return { logger, close: () => file.close() };
}

/** The last `n` lines of the log, reaching into `node.log.1` when the current file holds fewer. */
export function lastLogLines(dataDir: string, n: number, read: (path: string) => string): string[] {
  const { current, previous } = logPaths(dataDir);
  const lines = (path: string): string[] => (existsSync(path) ? read(path).split("\n").filter((l) => l !== "") : []);
  const now = lines(current);
  const all = now.length >= n ? now : [...lines(previous), ...now];
  return all.slice(-n);
}

