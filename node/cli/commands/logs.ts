import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { Command } from "commander";
import { CoderClawError } from "../../../src/contract/errors.js";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import { EXIT } from "../exit-codes.js";
import { lastLogLines, logPaths } from "../node-log.js";
import { humanTime } from "../output.js";
import type { AccessOptions } from "../runtime-access.js";

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const BASE_KEYS = new Set(["level", "time", "pid", "hostname", "msg"]);

/** A pino line for a person: time, level, message, then the other fields as key=value. */
function humanLine(line: string): string {
  let entry: Record<string, unknown>;
  try {
    entry = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return line;
  }
  const extra = Object.entries(entry)
    .filter(([k]) => !BASE_KEYS.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [humanTime(entry.time as number | undefined), (LEVEL_NAMES[entry.level as number] ?? String(entry.level)).padEnd(5), String(entry.msg ?? ""), ...extra].join(" ");
}

/** `coderclaw logs [-f]`: the node's log file in its home. */
export function logsCommand(setExit: (code: number) => void): Command {
  return new Command("logs")
    .description("the node's log (node.log in its data directory, written by start)")
    .option("-n, --lines <n>", "the last this many lines", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 100_000) throw new CoderClawError("INVALID_INPUT", `--lines: ${JSON.stringify(v)} is not a whole number 1..100000`, { field: "lines" });
      return n;
    }, 50)
    .option("-f, --follow", "then print lines as the node writes them, until Ctrl-C")
    .option("--json", "the lines as written: one JSON object each")
    .addHelpText("after", "\nExamples:\n  coderclaw logs -n 200\n  coderclaw logs -f\n  coderclaw start --log-level debug\n")
    .action(async (opts: { lines: number; follow?: boolean; json?: boolean }, cmd: Command) => {
      const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
      const { current } = logPaths(dataDir);
      if (!existsSync(current) && !opts.follow) throw new CoderClawError("NOT_FOUND", `no log yet: ${current} does not exist (a node started with \`coderclaw start\` writes it)`);
      const print = (line: string): void => void process.stdout.write((opts.json ? line : humanLine(line)) + "\n");
      for (const line of lastLogLines(dataDir, opts.lines, (p) => readFileSync(p, "utf8"))) print(line);
      if (!opts.follow) {
        setExit(EXIT.ok);
        return;
      }
      setExit(await follow(current, print));
    });
}

/** Print lines appended to `path` until SIGINT; a rotation (the file shrank) starts over at its beginning. */
function follow(path: string, print: (line: string) => void): Promise<number> {
  let offset = existsSync(path) ? statSync(path).size : 0;
  let partial = "";
  const poll = (): void => {
    if (!existsSync(path)) return;
    const size = statSync(path).size;
    if (size < offset) offset = 0;
    if (size === offset) return;
    const fd = openSync(path, "r");
    const buf = Buffer.alloc(size - offset);
    readSync(fd, buf, 0, buf.length, offset);
    closeSync(fd);
    offset = size;
    const lines = (partial + buf.toString("utf8")).split("\n");
    partial = lines.pop() ?? "";
    for (const l of lines) if (l !== "") print(l);
  };
  const timer = setInterval(poll, 200);
  return new Promise((resolve) => {
    process.once("SIGINT", () => {
      clearInterval(timer);
      poll();
      resolve(EXIT.interrupted);
    });
  });
}
