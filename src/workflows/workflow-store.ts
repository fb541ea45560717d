import * as A from "@automerge/automerge";
import { CoderClawError, InvalidInputError, NotFoundError } from "../contract/errors.js";
import type { DocumentStore } from "../storage/document-store.js";
import type { StepRecord, WorkflowRecord } from "./workflow-record.js";

/** Durable workflow records: what a coordinator reads back after a restart. */
export interface WorkflowStore {
  /** Store a new record; resolves once it is durable. */
  create(record: WorkflowRecord): Promise<void>;
  /** Change a record's head (status, end) and the steps named; resolves once durable. */
  update(id: string, change: WorkflowChange): Promise<void>;
  get(id: string): Promise<WorkflowRecord | undefined>;
  /** Every stored workflow's id. */
  ids(): AsyncIterable<string>;
}

/** What one update writes. */
export interface WorkflowChange {
  status?: WorkflowRecord["status"];
  endedAt?: number;
  error?: string;
  steps?: Record<string, StepRecord>;
}

/** Prefix of workflow documents in the document store. */
export const WORKFLOW_PREFIX = "workflow/";

/**
 * A workflow as an Automerge document: the fixed part (definition, input) and
 * each step as immutable JSON strings, so a step's update replaces one value
 * rather than growing a text CRDT by every character of an output. A step
 * pending and never tried is absent.
 */
type WorkflowDoc = {
  v: number;
  id: A.ImmutableString;
  /** Read by the writer rule of replicated workflow documents (node/sync/workflow-writer-rule.ts). */
  coordinator?: A.ImmutableString;
  fixed: A.ImmutableString;
  status: A.ImmutableString;
  endedAt?: number;
  error?: A.ImmutableString;
  steps: Record<string, A.ImmutableString>;
};

const VERSION = 1;
const str = (s: string): A.ImmutableString => new A.ImmutableString(s);

/**
 * Workflow records kept as documents in `store`, under {@link WORKFLOW_PREFIX}.
 * With `actor`, every change is made as that Automerge actor: a replicated
 * workflow document is taken only with its coordinator's actor on each change.
 */
export function documentWorkflowStore(store: DocumentStore, options: { actor?: string } = {}): WorkflowStore {
  const { actor } = options;
  const asWriter = (doc: A.Doc<WorkflowDoc>): A.Doc<WorkflowDoc> => (actor === undefined || A.getActorId(doc) === actor ? doc : A.clone(doc, actor));
  return {
    async create(record) {
      const { id, coordinator, definition, input, createdAt, status, steps } = record;
      await store.update<WorkflowDoc>(WORKFLOW_PREFIX + id, (doc) => {
        if (doc !== undefined) throw new InvalidInputError(`workflow ${id} exists already`, "id");
        // A step not written yet is pending (see readWorkflowDoc): a new workflow of a hundred steps is one value, not a hundred.
        const stepValues: Record<string, A.ImmutableString> = {};
        for (const [stepId, r] of Object.entries(steps)) if (!isUntouched(r)) stepValues[stepId] = str(JSON.stringify(r));
        return A.from<WorkflowDoc>({ v: VERSION, id: str(id), ...(coordinator !== undefined && { coordinator: str(coordinator) }), fixed: str(JSON.stringify({ definition, input, createdAt })), status: str(status), steps: stepValues }, actor === undefined ? undefined : { actor: actor });
      });
    },
    async update(id, change) {
      await store.update<WorkflowDoc>(WORKFLOW_PREFIX + id, (doc) => {
        if (doc === undefined) throw new NotFoundError("workflow", id);
        return A.change(asWriter(doc), (d) => {
          if (change.status !== undefined) d.status = str(change.status);
          if (change.endedAt !== undefined) d.endedAt = change.endedAt;
          if (change.error !== undefined) d.error = str(change.error);
          for (const [stepId, r] of Object.entries(change.steps ?? {})) d.steps[stepId] = str(JSON.stringify(r));
        });
      });
    },
    async get(id) {
      const doc = await store.get<WorkflowDoc>(WORKFLOW_PREFIX + id);
      return doc === undefined ? undefined : readWorkflowDoc(id, doc);
    },
    async *ids() {
      for await (const docId of store.ids(WORKFLOW_PREFIX)) yield docId.slice(WORKFLOW_PREFIX.length);
    },
  };
}

/**
 * What is wrong with a received workflow document's content, if anything
 * (`root` reads its top-level scalars): such a document is never stored.
 */
export function workflowContentProblem(root: (key: string) => string | number | boolean | null | undefined): string | undefined {
  if (root("v") !== VERSION) return `unsupported layout version ${String(root("v"))}`;
  const status = root("status");
  if (typeof status !== "string" || !["running", "completed", "failed", "cancelled"].includes(status)) return `unknown status ${String(status).slice(0, 40)}`;
  const fixed = root("fixed");
  try {
    const parsed: unknown = typeof fixed === "string" ? JSON.parse(fixed) : undefined;
    if (typeof parsed !== "object" || parsed === null || !("definition" in parsed)) return "fixed is not a JSON object with a definition";
  } catch {
    return "fixed is not JSON";
  }
  return undefined;
}

/** A step as a new workflow holds it, which the document leaves out. */
function isUntouched(r: StepRecord): boolean {
  return r.status === "pending" && r.attempts.length === 0 && Object.keys(r).length === 2;
}

function readWorkflowDoc(id: string, doc: A.Doc<WorkflowDoc>): WorkflowRecord {
  const corrupt = (why: string): CoderClawError => new CoderClawError("STORAGE_CORRUPT", `workflow document ${id}: ${why}`);
  if (doc.v !== VERSION) throw corrupt(`version ${String(doc.v)}, expected ${VERSION}`);
  let fixed: Pick<WorkflowRecord, "definition" | "input" | "createdAt">;
  const steps: Record<string, StepRecord> = {};
  try {
    fixed = JSON.parse(doc.fixed.toString()) as typeof fixed;
    for (const step of fixed.definition.steps) steps[step.id] = { status: "pending", attempts: [] };
    for (const [stepId, value] of Object.entries(doc.steps)) steps[stepId] = JSON.parse(value.toString()) as StepRecord;
  } catch (err) {
    throw corrupt(`does not read as JSON (${(err as Error).message})`);
  }
  return {
    id,
    ...(doc.coordinator !== undefined && { coordinator: doc.coordinator.toString() }),
    definition: fixed.definition,
    input: fixed.input,
    createdAt: fixed.createdAt,
    status: doc.status.toString() as WorkflowRecord["status"],
    ...(doc.endedAt !== undefined && { endedAt: doc.endedAt }),
    ...(doc.error !== undefined && { error: doc.error.toString() }),
    steps,
  };
}
