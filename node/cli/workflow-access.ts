import type { Command } from "commander";
import { parseWorkflowFile, type WorkflowRecord } from "../../src/workflows/index.js";
import { workflowSummary } from "../workflows/workflow-admin.js";
import { admin } from "./commands/mesh.js";
import { serverAdapter, type AccessOptions } from "./runtime-access.js";

/** What `coderclaw workflow` needs of the node that runs workflows. */
export interface WorkflowAccess {
  /** Start the workflow written in `text` (read from `file`, named in errors). */
  start(file: string, text: string, input: string | Record<string, string>): Promise<{ id: string; name: string }>;
  /** The newest `limit` workflows, summarised (status and how many steps stand where). */
  list(limit: number): Promise<Array<Record<string, unknown>>>;
  get(id: string): Promise<WorkflowRecord>;
  /** False when it had already ended. */
  cancel(id: string): Promise<boolean>;
  close(): Promise<void>;
}

/**
 * The node's workflows the way the command reaches it: `--server URL` over the
 * HTTP API (as the session's subject, whose rights every step is checked
 * against), otherwise the node running on this machine's home through its
 * control socket.
 */
export function workflowAccess(cmd: Command): WorkflowAccess {
  const http = serverAdapter(cmd.optsWithGlobals<AccessOptions>());
  if (http === undefined) {
    return {
      start: async (file, text, input) => (await admin(cmd, "workflow.start", { file, text, input }, false)) as { id: string; name: string },
      list: async (limit) => (await admin(cmd, "workflow.list", { limit }, false)) as Array<Record<string, unknown>>,
      get: async (id) => (await admin(cmd, "workflow.get", { id }, false)) as WorkflowRecord,
      cancel: async (id) => ((await admin(cmd, "workflow.cancel", { id }, false)) as { cancelled: boolean }).cancelled,
      close: async () => undefined,
    };
  }
  return {
    async start(file, text, input) {
      // A mistake in the file is told here, naming the file, line and key, rather than by the server as "workflow".
      parseWorkflowFile(text, file);
      const record = (await http.call("POST", "/workflows", { workflow: text, input })) as WorkflowRecord;
      return { id: record.id, name: record.definition.name };
    },
    list: async (limit) => ((await http.call("GET", "/workflows")) as { workflows: WorkflowRecord[] }).workflows.slice(0, limit).map(workflowSummary),
    get: async (id) => (await http.call("GET", `/workflows/${encodeURIComponent(id)}`)) as WorkflowRecord,
    cancel: async (id) => ((await http.call("POST", `/workflows/${encodeURIComponent(id)}/cancel`)) as { cancelled: boolean }).cancelled,
    close: () => http.close(),
  };
}
