import Table from "cli-table3";
import { formatRequirements } from "../../src/contract/requirements.js";
import type { AgentInfo, SkillInfo, TaskEvent, TaskState, TaskUpdateEvent } from "../../src/contract/types.js";

/** Print a value as pretty JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

const time = (d: Date | undefined): string => (d ? d.toISOString().replace("T", " ").slice(0, 19) : "");

/** A table of tasks, newest first. */
export function taskTable(tasks: TaskState[]): string {
  const t = new Table({ head: ["id", "status", "agent", "session", "created", "description", "where / why"], style: { head: [] } });
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
  const t = new Table({ head: ["id", "agent", "waits on", "priority", "age", "reason"], style: { head: [] } });
  for (const task of tasks) {
    const age = Math.max(0, Math.round((now - task.createdAt.getTime()) / 1000));
    t.push([task.id, task.agentId ?? "", short(task.executorId), String(task.placement?.priority ?? 0), `${age}s`, task.placement?.reason ?? ""]);
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
      return `${String(e.seq ?? "").padStart(4)} ${e.timestamp.toISOString()} ${kind.padEnd(16)} ${e.status.padEnd(9)}${p}${e.message ? `  ${e.message}` : ""}`;
    })
    .join("\n");
}

/** Agents with availability and the reason when unavailable. */
export function agentTable(agents: AgentInfo[]): string {
  const t = new Table({ head: ["id", "available", "capabilities", "description"], style: { head: [] } });
  for (const a of agents) {
    t.push([a.id, a.available === false ? `no: ${a.unavailableReason ?? "unavailable"}` : "yes", a.capabilities.join(", "), a.description.slice(0, 50)]);
  }
  return t.toString();
}

/** Skills with enablement and the missing requirement when disabled. */
export function skillTable(skills: SkillInfo[]): string {
  const t = new Table({ head: ["id", "version", "enabled", "dangerous", "description"], style: { head: [] } });
  for (const s of skills) {
    t.push([s.id, s.version, s.enabled ? "yes" : `no: ${s.disabledReason ?? "disabled"}`, s.dangerous ? "yes" : "", s.description.slice(0, 50)]);
  }
  return t.toString();
}
