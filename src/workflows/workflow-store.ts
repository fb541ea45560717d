import { randomBytes } from "node:crypto";
import * as A from "@automerge/automerge";
import { CoderClawError, InvalidInputError, NotFoundError } from "../contract/errors.js";
import type { DocumentStore } from "../storage/document-store.js";
import { encodeFirstChange, type ChangeOp, type InsertOp } from "../storage/first-change.js";
import { checkWorkflow, draftOf, type WorkflowDefinition, type WorkflowDraft } from "./definition.js";
import { isStepStatus, type StepRecord, type WorkflowRecord, type WorkflowStarter } from "./workflow-record.js";

/** Durable workflow records: what a coordinator reads back after a restart. */
export interface WorkflowStore {
  /** Store a new record; resolves once it is durable. */
  create(record: WorkflowRecord): Promise<void>;
  /** Change a record's head (status, end) and the steps named; resolves once durable. `change` is read before this returns. */
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
 * A workflow as an Automerge document: the fixed part (the definition as its
 * compact draft, checked again when read; the input) as one immutable JSON string, and the steps' progress as a list of immutable
 * JSON strings, one per write, each holding the steps that write changed
 * (layout 2). A write is then one Automerge operation however many steps it
 * carries (a hundred steps ending together were a hundred before), and never a
 * text CRDT grown by every character of an output. A step absent from every
 * entry is pending and never tried. Layout 1 kept one value per step in
 * `steps` and the whole definition; such a document is read as it is and
 * written on in layout 2.
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
  /** Layout 1: each step's record. */
  steps?: Record<string, A.ImmutableString>;
  /** Layout 2: `{ stepId: StepRecord }` per write, oldest first; read after `steps`. */
  log?: A.ImmutableString[];
};

const VERSION = 2;
const READABLE_VERSIONS = new Set([1, VERSION]);
/**
 * Once the log holds this many entries, a write replaces them with one entry
 * of every step: reading a long-lived workflow costs its steps, not its writes.
 */
export const WORKFLOW_LOG_COMPACT_AT = 64;
const str = (s: string): A.ImmutableString => new A.ImmutableString(s);

/**
 * A new workflow document's first change, encoded directly, as a new task's
 * is: `A.from` builds, patches and materialises a document only for it to be
 * saved (0.6 ms of a hundred-step workflow's start, on the path of its steps).
 * Root values are scalar strings, as `str` makes them.
 */
function encodeNewWorkflowDoc(root: { id: string; coordinator?: string; fixed: string; status: string; log?: string }, actor: string): Uint8Array {
  const obj = "_root";
  const ops: Array<ChangeOp | InsertOp> = [];
  const set = (key: string, value: string): void => void ops.push({ action: "set", obj, key, value, pred: [] });
  if (root.coordinator !== undefined) set("coordinator", root.coordinator);
  set("fixed", root.fixed);
  set("id", root.id);
  if (root.log !== undefined) {
    ops.push({ action: "makeList", obj, key: "log", pred: [] });
    ops.push({ action: "set", obj: `${ops.length}@${actor}`, elemId: "_head", insert: true, value: root.log, pred: [] });
  }
  set("status", root.status);
  ops.push({ action: "set", obj, key: "v", value: VERSION, datatype: "int", pred: [] });
  return encodeFirstChange(actor, ops);
}

/**
 * Workflow records kept as documents in `store`, under {@link WORKFLOW_PREFIX}.
 * With `actor`, every change is made as that Automerge actor: a replicated
 * workflow document is taken only with its coordinator's actor on each change.
 */
export function documentWorkflowStore(store: DocumentStore, options: { actor?: string } = {}): WorkflowStore {
  const { actor } = options;
  // Without an actor of its own, one per store: drawing one per document costs more than writing it.
  const newActor = actor ?? randomBytes(16).toString("hex");
  const asWriter = (doc: A.Doc<WorkflowDoc>): A.Doc<WorkflowDoc> => (actor === undefined || A.getActorId(doc) === actor ? doc : A.clone(doc, actor));
  return {
    async create(record) {
      const { id, coordinator, startedBy, definition, input, createdAt, status, steps } = record;
      // A step not written yet is pending (see readWorkflowDoc): a new workflow of a hundred steps writes none, and no list
      // (an empty one costs a third of the document's making); the first write that changes a step makes it.
      const touched = Object.entries(steps).filter(([, r]) => !isUntouched(r));
      const bytes = encodeNewWorkflowDoc(
        { id, ...(coordinator !== undefined && { coordinator }), fixed: JSON.stringify({ draft: draftOf(definition), input, createdAt, ...(startedBy !== undefined && { startedBy }) }), status, ...(touched.length > 0 && { log: JSON.stringify(Object.fromEntries(touched)) }) },
        newActor,
      );
      if (!(await store.receiveNew(WORKFLOW_PREFIX + id, bytes, "local"))) throw new InvalidInputError(`workflow ${id} exists already`, "id");
    },
    async update(id, change) {
      // Read now: the caller may change the records it named once this returns.
      const { status, endedAt, error } = change;
      const stepsJson = change.steps === undefined || Object.keys(change.steps).length === 0 ? undefined : JSON.stringify(change.steps);
      await store.update<WorkflowDoc>(WORKFLOW_PREFIX + id, (doc) => {
        if (doc === undefined) throw new NotFoundError("workflow", id);
        const compact = stepsJson !== undefined && (doc.log?.length ?? 0) + 1 >= WORKFLOW_LOG_COMPACT_AT;
        const entry = stepsJson === undefined ? undefined : str(compact ? JSON.stringify({ ...readSteps(id, doc), ...(JSON.parse(stepsJson) as Record<string, StepRecord>) }) : stepsJson);
        return A.change(asWriter(doc), (d) => {
          if (status !== undefined) d.status = str(status);
          if (endedAt !== undefined) d.endedAt = endedAt;
          if (error !== undefined) d.error = str(error);
          if (entry === undefined) return;
          if (d.v !== VERSION) d.v = VERSION;
          if (d.log === undefined) d.log = [entry];
          else if (compact) {
            d.log.splice(0, d.log.length, entry);
            if (d.steps !== undefined) delete d.steps;
          } else d.log.push(entry);
        });
      });
      // Ended, it is read again only when someone asks: kept in memory, a coordinator's ended workflows would fill the
      // store's cache (a hundred steps' workflow is ~130 KB there) and every collection of the heap would mark them.
      if (status !== undefined && status !== "running") store.evict(WORKFLOW_PREFIX + id);
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
  const v = root("v");
  if (typeof v !== "number" || !READABLE_VERSIONS.has(v)) return `unsupported layout version ${String(v)}`;
  const status = root("status");
  if (typeof status !== "string" || !["running", "completed", "failed", "cancelled"].includes(status)) return `unknown status ${String(status).slice(0, 40)}`;
  const fixed = root("fixed");
  try {
    readFixed(typeof fixed === "string" ? fixed : "");
  } catch (err) {
    return `fixed: ${(err as Error).message}`;
  }
  return undefined;
}

/** A step as a new workflow holds it, which the document leaves out. */
function isUntouched(r: StepRecord): boolean {
  return r.status === "pending" && r.attempts.length === 0 && Object.keys(r).length === 2;
}

type Fixed = Pick<WorkflowRecord, "definition" | "input" | "createdAt" | "startedBy">;

/** The fixed part: layout 2's draft is checked as a new workflow's is (an error names the field); layout 1 kept the definition itself. */
function readFixed(text: string): Fixed {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error("not JSON");
  }
  if (typeof parsed !== "object" || parsed === null) throw new Error("not a JSON object");
  const { draft, definition, input, createdAt, startedBy } = parsed as { draft?: WorkflowDraft; definition?: WorkflowDefinition; input?: Fixed["input"]; createdAt?: number; startedBy?: unknown };
  if (typeof createdAt !== "number" || (typeof input !== "string" && (typeof input !== "object" || input === null))) throw new Error("no input and creation time");
  // Who started it decides who may read it over HTTP: a value of another shape is refused, not read as no one.
  if (startedBy !== undefined && !isStarter(startedBy)) throw new Error("startedBy is not a subject and an optional session");
  const starter = startedBy === undefined ? {} : { startedBy };
  if (draft !== undefined) {
    try {
      return { definition: checkWorkflow(draft), input, createdAt, ...starter };
    } catch (err) {
      throw new Error(`draft: ${(err as Error).message}`);
    }
  }
  if (typeof definition !== "object" || definition === null || !Array.isArray(definition.steps)) throw new Error("neither a draft nor a definition");
  // A received layout 1 document is checked as a draft is: its definition is read by every member's listings.
  try {
    return { definition: checkWorkflow(draftOf(definition)), input, createdAt, ...starter };
  } catch (err) {
    throw new Error(`definition: ${(err as Error).message}`);
  }
}

/** The steps a document records (layout 1's values, then layout 2's entries in order); a step it does not name is absent. */
function readSteps(id: string, doc: A.Doc<WorkflowDoc>): Record<string, StepRecord> {
  const steps: Record<string, StepRecord> = {};
  try {
    for (const [stepId, value] of Object.entries(doc.steps ?? {})) steps[stepId] = JSON.parse(value.toString()) as StepRecord;
    for (const entry of doc.log ?? []) Object.assign(steps, JSON.parse(entry.toString()) as Record<string, StepRecord>);
  } catch (err) {
    throw corruptWorkflow(id, `does not read as JSON (${(err as Error).message})`);
  }
  // A member's document says what its coordinator wrote, which need not be what a coordinator writes: every member's
  // listings read these fields, so one that is not a step's record makes the document unreadable, not them.
  for (const [stepId, r] of Object.entries(steps)) if (!isStepRecord(r)) throw corruptWorkflow(id, `step ${stepId.slice(0, 64)}: not a step's record`);
  return steps;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isTime = (v: unknown): boolean => typeof v === "number" && Number.isFinite(v);
const optional = (v: unknown, check: (v: unknown) => boolean): boolean => v === undefined || check(v);
const isText = (v: unknown): boolean => typeof v === "string";
const isStarter = (v: unknown): v is WorkflowStarter => isObject(v) && isText(v.subject) && optional(v.sessionId, isText) && Object.keys(v).every((k) => k === "subject" || k === "sessionId");

function isStepRecord(r: unknown): boolean {
  if (!isObject(r) || !isStepStatus(r.status) || !Array.isArray(r.attempts) || !r.attempts.every(isObject)) return false;
  if (!optional(r.output, isText) || !optional(r.error, isText) || !optional(r.reason, isText) || !optional(r.retryAt, isTime)) return false;
  return optional(r.approval, (a) => isObject(a) && isText(a.id) && isTime(a.askedAt) && isTime(a.deadline) && optional(a.decision, isObject));
}

function corruptWorkflow(id: string, why: string): CoderClawError {
  return new CoderClawError("STORAGE_CORRUPT", `workflow document ${id}: ${why}`);
}

function readWorkflowDoc(id: string, doc: A.Doc<WorkflowDoc>): WorkflowRecord {
  if (!READABLE_VERSIONS.has(doc.v)) throw corruptWorkflow(id, `version ${String(doc.v)}, expected ${[...READABLE_VERSIONS].join(" or ")}`);
  let fixed: Fixed;
  try {
    fixed = readFixed(doc.fixed.toString());
  } catch (err) {
    throw corruptWorkflow(id, `fixed: ${(err as Error).message}`);
  }
  const steps: Record<string, StepRecord> = {};
  for (const step of fixed.definition.steps) steps[step.id] = { status: "pending", attempts: [] };
  Object.assign(steps, readSteps(id, doc));
  return {
    id,
    ...(doc.coordinator !== undefined && { coordinator: doc.coordinator.toString() }),
    ...(fixed.startedBy !== undefined && { startedBy: fixed.startedBy }),
    definition: fixed.definition,
    input: fixed.input,
    createdAt: fixed.createdAt,
    status: doc.status.toString() as WorkflowRecord["status"],
    ...(doc.endedAt !== undefined && { endedAt: doc.endedAt }),
    ...(doc.error !== undefined && { error: doc.error.toString() }),
    steps,
  };
}
