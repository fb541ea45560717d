import Table from "cli-table3";
import ms from "ms";
import { formatRequirements } from "../../src/contract/requirements.js";
import type { AgentInfo, SkillInfo, TaskEvent, TaskState, TaskUpdateEvent } from "../../src/contract/types.js";

/** Print a value as pretty JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

/**
 * Colour only for a person at a terminal: off when stdout is piped, and
 * where Node's own terminal check says no (`NO_COLOR`, `NODE_DISABLE_COLORS`,
 * `FORCE_COLOR=0`, a dumb terminal, a CI without colour). Colour libraries
 * that sniff the environment would colour piped output under `FORCE_COLOR`
 * or some CIs; escape codes in a pipe are what scripts must never get.
 */
export function colourWanted(stream: NodeJS.WriteStream = process.stdout, env: NodeJS.ProcessEnv = process.env): boolean {
  return stream.isTTY === true && stream.hasColors(env);
}

/**
 * A table with the given head; grey borders only where {@link colourWanted}.
 * On a terminal it is fitted to the terminal's width, wrapping the widest
 * columns; piped, it keeps every cell on one line for the scripts that read it.
 */
export function table(head: string[], width: number | undefined = process.stdout.isTTY ? process.stdout.columns : undefined): Table.Table {
  const t = new Table({ head, style: { head: [], border: colourWanted() ? ["grey"] : [] } });
  const render = t.toString.bind(t);
  t.toString = () => {
    const widths = width === undefined ? undefined : fittedWidths([head, ...(t as unknown as string[][])], width);
    if (widths !== undefined) Object.assign(t.options, { colWidths: widths, wordWrap: true, wrapOnWordBoundary: false });
    return render();
  };
  return t;
}

/** Cells take their text plus one space either side; the borders one column each, plus one. */
const PADDING = 2;
const MIN_COLUMN = 3;

/**
 * Column widths that fit `rows` in `width` columns, or undefined when they fit
 * already: columns narrower than an even share keep their width, the others
 * share what remains.
 */
function fittedWidths(rows: ReadonlyArray<ReadonlyArray<unknown>>, width: number): number[] | undefined {
  const columns = Math.max(...rows.map((r) => r.length));
  const natural = Array.from({ length: columns }, (_, i) => Math.max(...rows.map((r) => Math.max(...String(r[i] ?? "").split("\n").map((l) => l.length)))) + PADDING);
  let budget = width - (columns + 1);
  if (natural.reduce((a, b) => a + b, 0) <= budget) return undefined;
  const widths = new Array<number>(columns).fill(0);
  let open = natural.map((w, i) => ({ w, i })).sort((x, y) => x.w - y.w);
  while (open.length > 0) {
    const share = Math.floor(budget / open.length);
    const fits = open.filter((c) => c.w <= share);
    if (fits.length === 0) {
      open.forEach((c, k) => (widths[c.i] = Math.max(MIN_COLUMN, share + (k < budget - share * open.length ? 1 : 0))));
      break;
    }
    for (const c of fits) {
      widths[c.i] = c.w;
      budget -= c.w;
    }
    open = open.filter((c) => c.w > share);
  }
  return widths;
}

/**
 * The one time format of human output: ISO 8601 in UTC to the second
 * (`2026-12-05T09:00:00Z`), whether the source held a Date, epoch ms or an ISO string.
 */
export function humanTime(t: Date | number | string | undefined): string {
  if (t === undefined) return "";
  const d = t instanceof Date ? t : new Date(t);
  return Number.isNaN(d.getTime()) ? "" : `${d.toISOString().slice(0, 19)}Z`;
}

const time = humanTime;

/** A table of tasks, newest first. */
export function taskTable(tasks: TaskState[]): string {
  const t = table(["id", "status", "agent", "session", "created", "description", "where / why"]);
  for (const task of tasks) {
    t.push([task.id, task.status, task.agentId ?? "", task.sessionId ?? "", time(task.createdAt), task.description.slice(0, 40), whereOrWhy(task)]);
  }
  return t.toString();
}

/** Where a task runs, or, while it waits, why. */
function whereOrWhy(task: TaskState): string {
  if (task.status === "pending" && task.placement?.reason !== undefined) return task.placement.reason.slice(0, 60);
  return short(task.placement?.runsOn ?? task.executorId);
}

const short = (peer: string | undefined): string => (peer === undefined ? "" : peer.length > 16 ? `${peer.slice(0, 8)}…${peer.slice(-6)}` : peer);

/** The tasks waiting for a member: on which node, at what priority, for how long, and why. */
export function queueTable(tasks: TaskState[], now = Date.now()): string {
  const t = table(["id", "agent", "waits on", "priority", "age", "reason"]);
  for (const task of tasks) {
    const age = Math.max(0, Math.round((now - task.createdAt.getTime()) / 1000) * 1000);
    t.push([task.id, task.agentId ?? "", short(task.executorId), String(task.placement?.priority ?? 0), ms(age), task.placement?.reason ?? ""]);
  }
  return t.toString();
}

/** One task, field by field. */
export function taskDetails(task: TaskState): string {
  const rows: Array<[string, string]> = [
    ["id", task.id],
    ["status", task.status],
    ["agent", task.agentId ?? ""],
    ["description", task.description],
    ["session", task.sessionId ?? ""],
    ["kept by", task.executorId ?? ""],
    ["runs on", task.placement?.runsOn ?? ""],
    ["attempt", task.placement?.attempt === undefined ? "" : `${task.placement.attempt} (${task.placement.attemptId ?? "not answered yet"})`],
    ["waits for", task.status === "pending" ? (task.placement?.reason ?? "") : ""],
    ["priority", task.placement?.priority === undefined || task.placement.priority === 0 ? "" : String(task.placement.priority)],
    ["requires", task.placement?.requires === undefined ? "" : formatRequirements(task.placement.requires)],
    ["deadline", time(task.placement?.deadline)],
    ["created", time(task.createdAt)],
    ["started", time(task.startedAt)],
    ["completed", time(task.completedAt)],
    ["progress", task.progress === undefined ? "" : `${task.progress}%`],
    ["output", task.output ?? ""],
    ["error", task.error ?? ""],
  ];
  return rows.filter(([, v]) => v !== "").map(([k, v]) => `${k.padEnd(12)} ${v}`).join("\n");
}

/** A task's history as lines. */
export function eventLines(events: Array<TaskEvent | TaskUpdateEvent>): string {
  return events
    .map((e) => {
      const kind = "type" in e ? e.type : "update";
      const p = e.progress === undefined ? "" : ` ${e.progress}%`;
      return `${String(e.seq ?? "").padStart(4)} ${humanTime(e.timestamp)} ${kind.padEnd(16)} ${e.status.padEnd(9)}${p}${e.message ? `  ${e.message}` : ""}`;
    })
    .join("\n");
}

/** Agents with availability and the reason when unavailable. */
export function agentTable(agents: AgentInfo[]): string {
  const t = table(["id", "available", "capabilities", "description"]);
  for (const a of agents) {
    t.push([a.id, a.available === false ? `no: ${a.unavailableReason ?? "unavailable"}` : "yes", a.capabilities.join(", "), a.description.slice(0, 50)]);
  }
  return t.toString();
}

/** Skills with enablement and the missing requirement when disabled. */
export function skillTable(skills: SkillInfo[]): string {
  const t = table(["id", "version", "enabled", "dangerous", "description"]);
  for (const s of skills) {
    t.push([s.id, s.version, s.enabled ? "yes" : `no: ${s.disabledReason ?? "disabled"}`, s.dangerous ? "yes" : "", s.description.slice(0, 50)]);
  }
  return t.toString();
}
