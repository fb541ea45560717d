import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { Command } from "commander";
import { CoderClawError } from "../../../src/contract/errors.js";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import { EXIT } from "../exit-codes.js";
import { checkFieldsPresent, fieldsLine, fieldsOption, pickFields } from "../fields.js";
import { lastLogLines, logPaths } from "../node-log.js";
import { humanTime } from "../output.js";
import type { AccessOptions } from "../runtime-access.js";

const LEVEL_NAMES: Record<number, string> = { 10: "TRACE", 20: "DEBUG", 30: "INFO", 40: "WARN", 50: "ERROR", 60: "FATAL" };
const BASE_KEYS = new Set(["level", "time", "pid", "hostname", "msg"]);

/** A line's fields, or undefined for a line that is not a JSON object (a torn last line, or not written by the node). */
function entryOf(line: string): Record<string, unknown> | undefined {
  try {
    const entry: unknown = JSON.parse(line);
    return entry !== null && typeof entry === "object" && !Array.isArray(entry) ? (entry as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** A line of the log as read, and its fields once parsed. */
interface LogLine {
  text: string;
  entry: Record<string, unknown> | undefined;
}

const logLine = (text: string): LogLine => ({ text, entry: entryOf(text) });

/** A pino line for a person: time, level, message, then the other fields as key=value. */
function humanLine({ text, entry }: LogLine): string {
  if (entry === undefined) return text;
  const extra = Object.entries(entry)
    .filter(([k]) => !BASE_KEYS.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`);
  return [humanTime(entry.time as number | undefined), (LEVEL_NAMES[entry.level as number] ?? String(entry.level)).padEnd(5), String(entry.msg ?? ""), ...extra].join(" ");
}

/**
 * How a line is printed with `--fields`: those fields as a JSON object with
 * `--json`, else tab-separated with the time for a person. Lines differ in
 * their fields (a task line has `task`, a peer line `peer`), so a line
 * without one prints it empty.
 */
function fieldsPrinter(fields: readonly string[], json: boolean): (line: LogLine) => string | undefined {
  return ({ entry }) => {
    if (entry === undefined) return undefined;
    if (json) return JSON.stringify(pickFields(entry, fields));
    return fieldsLine(typeof entry.time === "number" ? { ...entry, time: new Date(entry.time) } : entry, fields);
  };
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
    .addOption(fieldsOption())
    .addHelpText("after", "\nExamples:\n  coderclaw logs -n 200\n  coderclaw logs -f\n  coderclaw logs --fields time,msg,task,status\n  coderclaw start --log-level debug\n")
    .action(async (opts: { lines: number; follow?: boolean; json?: boolean; fields?: string[] }, cmd: Command) => {
      const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
      const { current } = logPaths(dataDir);
      if (!existsSync(current) && !opts.follow) throw new CoderClawError("NOT_FOUND", `no log yet: ${current} does not exist (a node started with \`coderclaw start\` writes it)`);
      const backlog = lastLogLines(dataDir, opts.lines, (p) => readFileSync(p, "utf8")).map(logLine);
      const fields = opts.fields;
      // A field that no line shown has is refused as a typo, as on other listings; lines that come later under -f may lack it.
      if (fields !== undefined) checkFieldsPresent(backlog.flatMap((l) => l.entry ?? []), fields);
      const shown = fields !== undefined ? fieldsPrinter(fields, opts.json === true) : (line: LogLine) => (opts.json ? line.text : humanLine(line));
      const print = (line: LogLine): void => {
        const text = shown(line);
        if (text !== undefined) process.stdout.write(text + "\n");
      };
      for (const line of backlog) print(line);
      if (!opts.follow) {
        setExit(EXIT.ok);
        return;
      }
      setExit(await follow(current, (text) => print(logLine(text))));
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
