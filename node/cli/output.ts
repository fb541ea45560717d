import Table from "cli-table3";
import type { AgentInfo, SkillInfo, TaskEvent, TaskState, TaskUpdateEvent } from "../../src/contract/types.js";

/** Print a value as pretty JSON on stdout. */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, null, 2) + "\n");
}

const time = (d: Date | undefined): string => (d ? d.toISOString().replace("T", " ").slice(0, 19) : "");

/** A table of tasks, newest first. */
export function taskTable(tasks: TaskState[]): string {
  const t = new Table({ head: ["id", "status", "agent", "session", "created", "description"], style: { head: [] } });
  for (const task of tasks) {
    t.push([task.id, task.status, task.agentId ?? "", task.sessionId ?? "", time(task.createdAt), task.description.slice(0, 40)]);
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
    ["executor", task.executorId ?? ""],
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
