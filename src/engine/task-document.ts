import * as A from "@automerge/automerge";
import { CoderClawError } from "../contract/errors.js";
import type { TaskEvent, TaskEventType, TaskPlacement, TaskState, TaskStatus, TaskSubmitRequest } from "../contract/types.js";
import { TASK_STATUSES } from "../contract/types.js";
import { changeChunkHash, changeTime, encodeFirstChange, type ChangeOp, type InsertOp } from "../storage/first-change.js";
import type { RootListReader, RootReader } from "../storage/root-reader.js";

/** Version of the task document layout; documents of another version are refused on read. */
export const TASK_DOC_VERSION = 2;

/** Document id of a task in the document store. */
export function taskDocId(taskId: string): string {
  return `task/${taskId}`;
}

/**
 * Document id of a task whose document stays on this node (an attempt, which
 * its submitter mirrors into a task of its own): a namespace no node
 * replicates, so peers are neither offered it nor take it.
 */
export function homeTaskDocId(taskId: string): string {
  return `task-home/${taskId}`;
}

type IS = A.ImmutableString;

/**
 * The Automerge shape of one task, written by one node only (its executor).
 *
 * Every Automerge operation costs tens of microseconds, so the layout is made of
 * few, coarse values: the id and status as ImmutableStrings of their own (what
 * other nodes look at), the fields fixed at submission as one JSON value, the
 * fields that change while the task runs as another (rewritten whole when one of
 * them changes), and the history as a list whose entries each hold the events
 * one change appended. A task that runs and ends between two flushes is thus one
 * change of seven operations.
 */
export interface TaskDoc {
  v: number;
  id: IS;
  status: IS;
  /** JSON of {@link TaskSpec}. */
  spec: IS;
  /** JSON of {@link TaskProgressFields}; absent until one of them is set. */
  run?: IS;
  /** Each entry a JSON array of stored events, oldest first. */
  events: IS[];
}

/** What a task document holds in `spec`: fixed when the task is accepted. */
interface TaskSpec {
  description: string;
  input: string;
  createdAt: number;
  agentId?: string;
  sessionId?: string;
  parentTaskId?: string;
  model?: string;
  thinking?: string;
  metadata?: Record<string, unknown>;
  executorId?: string;
  submittedBy?: string;
  /** What the submission asked of placement: fixed with it. */
  placement?: FixedPlacement;
}

/** The part of a task's placement fixed at submission; the deadline in epoch ms. */
interface FixedPlacement {
  priority?: number;
  requires?: TaskPlacement["requires"];
  deadline?: number;
  route?: string;
}

/** The part of a task's placement that changes as it waits and is placed. */
interface MovingPlacement {
  reason?: string;
  runsOn?: string;
  attemptId?: string;
  attempt?: number;
  attemptSeq?: number;
}

/** What a task document holds in `run`: set while the task runs. */
interface TaskProgressFields {
  startedAt?: number;
  completedAt?: number;
  progress?: number;
  output?: string;
  /**
   * Set instead of `output` when the output is exactly the text of the task's
   * `output_added` events, in order: the document then holds it once (a shell
   * task's output is what it printed, which its history already holds).
   */
  outputInHistory?: true;
  error?: string;
  placement?: MovingPlacement;
}

/** The fixed part of a placement, or undefined when it has none. */
function fixedPlacement(p: TaskPlacement | undefined): FixedPlacement | undefined {
  if (p === undefined) return undefined;
  const f: FixedPlacement = {};
  if (p.priority !== undefined) f.priority = p.priority;
  if (p.requires !== undefined) f.requires = p.requires;
  if (p.deadline !== undefined) f.deadline = p.deadline.getTime();
  if (p.route !== undefined) f.route = p.route;
  return f;
}

/** The moving part of a placement, or undefined when none of it is set. */
function movingPlacement(p: TaskPlacement | undefined): MovingPlacement | undefined {
  if (p === undefined) return undefined;
  const m: MovingPlacement = {};
  if (p.reason !== undefined) m.reason = p.reason;
  if (p.runsOn !== undefined) m.runsOn = p.runsOn;
  if (p.attemptId !== undefined) m.attemptId = p.attemptId;
  if (p.attempt !== undefined) m.attempt = p.attempt;
  if (p.attemptSeq !== undefined) m.attemptSeq = p.attemptSeq;
  return Object.keys(m).length > 0 ? m : undefined;
}

const isString = (v: unknown): v is string => typeof v === "string";
const isNumber = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/**
 * A placement read back from a document, keeping only well-typed fields: a
 * replica written by another node is state to show, and must not put a value
 * of the wrong type into a TaskState.
 */
function readPlacement(fixed: unknown, moving: unknown): TaskPlacement | undefined {
  const f = (typeof fixed === "object" && fixed !== null ? fixed : {}) as Record<string, unknown>;
  const m = (typeof moving === "object" && moving !== null ? moving : {}) as Record<string, unknown>;
  if (fixed === undefined && moving === undefined) return undefined;
  const p: TaskPlacement = {};
  if (isNumber(f.priority)) p.priority = f.priority;
  if (typeof f.requires === "object" && f.requires !== null) p.requires = f.requires;
  if (isNumber(f.deadline)) p.deadline = new Date(f.deadline);
  if (isString(f.route)) p.route = f.route;
  if (isString(m.reason)) p.reason = m.reason;
  if (isString(m.runsOn)) p.runsOn = m.runsOn;
  if (isString(m.attemptId)) p.attemptId = m.attemptId;
  if (isNumber(m.attempt)) p.attempt = m.attempt;
  if (isNumber(m.attemptSeq)) p.attemptSeq = m.attemptSeq;
  return p;
}

function samePlacement(a: TaskPlacement | undefined, b: TaskPlacement | undefined): boolean {
  return a?.reason === b?.reason && a?.runsOn === b?.runsOn && a?.attemptId === b?.attemptId && a?.attempt === b?.attempt && a?.attemptSeq === b?.attemptSeq;
}

/** A task as the engine keeps it: its request, current state and full history. */
export interface TaskRecord {
  request: TaskSubmitRequest;
  state: TaskState;
  events: TaskEvent[];
}

interface StoredEvent {
  seq: number;
  type: TaskEventType;
  ts: number;
  status: TaskStatus;
  message?: string;
  progress?: number;
  data?: unknown;
}

function fromStoredEvent(s: StoredEvent): TaskEvent {
  const e: TaskEvent = { seq: s.seq, type: s.type, timestamp: new Date(s.ts), status: s.status };
  if (s.message !== undefined) e.message = s.message;
  if (s.progress !== undefined) e.progress = s.progress;
  if (s.data !== undefined) e.data = s.data;
  return e;
}

const ROOT = "_root";
const SPEC_TEXT = ["agentId", "sessionId", "parentTaskId", "executorId", "submittedBy"] as const;

function specOf(record: TaskRecord): string {
  const { state, request } = record;
  const spec: TaskSpec = { description: state.description, input: request.input, createdAt: state.createdAt.getTime() };
  for (const k of SPEC_TEXT) if (state[k] !== undefined) spec[k] = state[k];
  if (request.model !== undefined) spec.model = request.model;
  if (request.thinking !== undefined) spec.thinking = request.thinking;
  if (state.metadata !== undefined) spec.metadata = state.metadata;
  const placement = fixedPlacement(state.placement);
  if (placement !== undefined) spec.placement = placement;
  return JSON.stringify(spec);
}

/**
 * The `run` value of a state, or undefined when none of its fields is set.
 * `history` gives the text of the task's output events, asked only when the
 * state has an output.
 */
function runOf(state: TaskState, history: () => string): string | undefined {
  const run: TaskProgressFields = {};
  if (state.startedAt !== undefined) run.startedAt = state.startedAt.getTime();
  if (state.completedAt !== undefined) run.completedAt = state.completedAt.getTime();
  if (state.progress !== undefined) run.progress = state.progress;
  if (state.output !== undefined) {
    if (state.output.length > 0 && state.output === history()) run.outputInHistory = true;
    else run.output = state.output;
  }
  if (state.error !== undefined) run.error = state.error;
  const placement = movingPlacement(state.placement);
  if (placement !== undefined) run.placement = placement;
  return Object.keys(run).length > 0 ? JSON.stringify(run) : undefined;
}

function sameRun(a: TaskState, b: TaskState): boolean {
  return (
    a.startedAt?.getTime() === b.startedAt?.getTime() &&
    a.completedAt?.getTime() === b.completedAt?.getTime() &&
    a.progress === b.progress &&
    a.output === b.output &&
    a.error === b.error &&
    samePlacement(a.placement, b.placement)
  );
}

function encodeEvents(events: readonly TaskEvent[]): string {
  return JSON.stringify(events.map(toStoredEvent));
}

/** The text of the `output_added` events among `events`, in order. */
function outputOf(events: ReadonlyArray<{ type: string; message?: string | undefined }>): string {
  let text = "";
  for (const e of events) if (e.type === "output_added" && e.message !== undefined) text += e.message;
  return text;
}

/**
 * The values of a new task document's root, as plain strings: what
 * {@link encodeTaskDoc} writes.
 */
export interface TaskDocRoot {
  id: string;
  status: string;
  spec: string;
  run?: string;
  events: string[];
}

/** The root values of the document of a task with this whole record. */
export function taskDocRoot(record: TaskRecord): TaskDocRoot {
  const root: TaskDocRoot = {
    id: record.state.id,
    status: record.state.status,
    spec: specOf(record),
    events: record.events.length > 0 ? [encodeEvents(record.events)] : [],
  };
  const run = runOf(record.state, () => outputOf(record.events));
  if (run !== undefined) root.run = run;
  return root;
}

/** A new task document in its stored form. */
export interface EncodedTaskDoc {
  /** One Automerge change chunk, which `A.load` reads as the whole document. */
  bytes: Uint8Array;
  heads: A.Heads;
}

/**
 * The document of a new task, encoded as its one Automerge change without
 * building the document: creating and saving a document costs ~110 us of wasm
 * per task, mostly fixed per-document work, where encoding the change costs
 * ~25 us. The document's head is the change chunk's hash.
 *
 * Root keys are written in sorted order and the history list is made first,
 * as Automerge itself orders the operations of one change.
 */
export function encodeTaskDoc(root: TaskDocRoot, actor: string): EncodedTaskDoc {
  const obj = "_root";
  const ops: Array<ChangeOp | InsertOp> = [
    { action: "makeList", obj, key: "events", pred: [] },
    { action: "set", obj, key: "id", value: root.id, pred: [] },
  ];
  if (root.run !== undefined) ops.push({ action: "set", obj, key: "run", value: root.run, pred: [] });
  ops.push(
    { action: "set", obj, key: "spec", value: root.spec, pred: [] },
    { action: "set", obj, key: "status", value: root.status, pred: [] },
    { action: "set", obj, key: "v", value: TASK_DOC_VERSION, datatype: "int", pred: [] },
  );
  const list = `1@${actor}`;
  let after = "_head";
  for (const entry of root.events) {
    ops.push({ action: "set", obj: list, elemId: after, insert: true, value: entry, pred: [] });
    after = `${ops.length}@${actor}`;
  }
  const bytes = encodeFirstChange(actor, ops);
  return { bytes, heads: [changeChunkHash(bytes).toString("hex")] };
}

/**
 * Apply the current state and the events not yet stored to a task document, as
 * one change that touches only the values that differ from `previous` (the state
 * the document holds). Written through the document's backend rather than `A.change`:
 * the same document object is returned, with new heads and a stale JS object.
 * Only the status and `run` can change: `spec` is fixed at submission.
 */
export function updateTaskDoc(doc: A.Doc<TaskDoc>, previous: TaskState, state: TaskState, newEvents: readonly TaskEvent[]): A.Doc<TaskDoc> {
  const h = A.getBackend(doc);
  if (previous.status !== state.status) h.put(ROOT, "status", state.status, "str");
  const events = h.get(ROOT, "events");
  if (typeof events !== "string") throw corrupt(state.id, "events is not a list");
  if (!sameRun(previous, state)) {
    const run = runOf(state, () => storedOutput(h, events, state.id) + outputOf(newEvents));
    if (run !== undefined) h.put(ROOT, "run", run, "str");
  }
  if (newEvents.length > 0) h.insert(events, h.length(events), encodeEvents(newEvents), "str");
  if (h.pendingOps() > 0) h.commit(null, changeTime());
  return doc;
}

/** The text of the output events a document's history list already holds. */
function storedOutput(h: ReturnType<typeof A.getBackend>, events: string, id: string): string {
  let text = "";
  for (let i = 0; i < h.length(events); i++) {
    const entry = h.get(events, i);
    if (typeof entry !== "string") throw corrupt(id, `history entry ${i} is not text`);
    text += outputOf(parseJson<StoredEvent[]>(id, "history entry", entry)!);
  }
  return text;
}

function corrupt(id: string, why: string): CoderClawError {
  return new CoderClawError("STORAGE_CORRUPT", `task document ${id}: ${why}`);
}

function parseJson<T>(id: string, what: string, raw: IS | string | undefined): T | undefined {
  if (raw === undefined) return undefined;
  try {
    return JSON.parse(raw.toString()) as T;
  } catch {
    throw corrupt(id, `${what} is not JSON`);
  }
}

/** What the task indexes are derived from. */
export interface TaskIndexFields {
  status: TaskStatus;
  createdAt: number;
  sessionId?: string;
  agentId?: string;
}

/**
 * The indexed fields of a task document, or undefined while the document does
 * not hold them in a readable form (a sync still under way, another layout).
 */
export function readTaskIndexFields(root: RootReader): TaskIndexFields | undefined {
  if (root("v") !== TASK_DOC_VERSION) return undefined;
  const status = root("status");
  if (typeof status !== "string" || !TASK_STATUSES.includes(status as TaskStatus)) return undefined;
  const rawSpec = root("spec");
  if (typeof rawSpec !== "string") return undefined;
  let spec: Partial<TaskSpec>;
  try {
    spec = JSON.parse(rawSpec) as Partial<TaskSpec>;
  } catch {
    return undefined;
  }
  if (typeof spec !== "object" || spec === null || typeof spec.createdAt !== "number") return undefined;
  const fields: TaskIndexFields = { status: status as TaskStatus, createdAt: spec.createdAt };
  if (typeof spec.sessionId === "string") fields.sessionId = spec.sessionId;
  if (typeof spec.agentId === "string") fields.agentId = spec.agentId;
  return fields;
}

/**
 * What is wrong with a task document received from another node, read from its
 * root values and history entries without building it; undefined when
 * {@link readTaskDoc} will read it. Replicated content that fails this is never
 * stored, so one bad document cannot stop a node from listing or starting.
 */
export function taskContentProblem(root: RootReader, lists: RootListReader): string | undefined {
  if (root("v") !== TASK_DOC_VERSION) return `unsupported layout version ${String(root("v"))}`;
  const status = root("status");
  if (typeof status !== "string" || !TASK_STATUSES.includes(status as TaskStatus)) return `unknown status ${String(status).slice(0, 40)}`;
  const spec = jsonObject(root("spec"));
  if (spec === undefined || typeof spec.createdAt !== "number" || typeof spec.description !== "string" || typeof spec.input !== "string") return "spec is missing or not a JSON object";
  const run = root("run");
  if (run !== undefined && jsonObject(run) === undefined) return "run is not a JSON object";
  const entries = lists("events");
  if (entries === undefined) return "events is not a list";
  for (const [i, entry] of entries.entries()) {
    let events: unknown;
    try {
      events = typeof entry === "string" ? JSON.parse(entry) : undefined;
    } catch {
      events = undefined;
    }
    if (!Array.isArray(events)) return `history entry ${i} is not a JSON list`;
    for (const e of events as Array<Partial<StoredEvent> | null>) {
      if (e === null || typeof e !== "object" || typeof e.seq !== "number" || typeof e.type !== "string" || typeof e.ts !== "number" || !TASK_STATUSES.includes(e.status as TaskStatus)) {
        return `history entry ${i} holds an event that is not one`;
      }
    }
  }
  return undefined;
}

function jsonObject(raw: unknown): Record<string, unknown> | undefined {
  if (typeof raw !== "string") return undefined;
  try {
    const value: unknown = JSON.parse(raw);
    return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/** Read a task document back into a record, refusing documents of another layout. */
export function readTaskDoc(doc: A.Doc<TaskDoc>): TaskRecord {
  const id = doc.id?.toString() ?? "?";
  if (doc.v !== TASK_DOC_VERSION) throw corrupt(id, `unsupported layout version ${String(doc.v)}`);
  const status = doc.status?.toString() as TaskStatus;
  if (!TASK_STATUSES.includes(status)) throw corrupt(id, `unknown status ${String(status)}`);
  const spec = parseJson<TaskSpec>(id, "spec", doc.spec);
  if (spec === undefined) throw corrupt(id, "spec is missing");
  const run = parseJson<TaskProgressFields>(id, "run", doc.run) ?? {};
  const state: TaskState = { id, status, description: spec.description, createdAt: new Date(spec.createdAt) };
  for (const k of SPEC_TEXT) if (spec[k] !== undefined) state[k] = spec[k];
  if (run.startedAt !== undefined) state.startedAt = new Date(run.startedAt);
  if (run.completedAt !== undefined) state.completedAt = new Date(run.completedAt);
  if (run.progress !== undefined) state.progress = run.progress;
  if (run.output !== undefined) state.output = run.output;
  if (run.error !== undefined) state.error = run.error;
  if (spec.metadata !== undefined) state.metadata = spec.metadata;
  const placement = readPlacement(spec.placement, run.placement);
  if (placement !== undefined) state.placement = placement;
  const request: TaskSubmitRequest = { description: spec.description, input: spec.input };
  for (const k of ["agentId", "sessionId", "parentTaskId"] as const) if (spec[k] !== undefined) request[k] = spec[k];
  if (spec.model !== undefined) request.model = spec.model;
  if (spec.thinking !== undefined) request.thinking = spec.thinking;
  if (spec.metadata !== undefined) request.metadata = spec.metadata;
  const events: TaskEvent[] = [];
  for (const entry of doc.events ?? []) {
    for (const e of parseJson<StoredEvent[]>(id, "history entry", entry)!) events.push(fromStoredEvent(e));
  }
  if (run.outputInHistory === true && run.output === undefined) state.output = outputOf(events);
  return { request, state, events };
}

/** Layout version of write-ahead records; records of another version are refused on read. */
const WAL_VERSION = 1;

type StoredState = Omit<TaskState, "createdAt" | "startedAt" | "completedAt" | "placement"> & {
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  placement?: { fixed?: FixedPlacement; moving?: MovingPlacement };
};

interface WalRecord {
  v: number;
  request: TaskSubmitRequest;
  state: StoredState;
  events: StoredEvent[];
}

function toStoredEvent(e: TaskEvent): StoredEvent {
  const stored: StoredEvent = { seq: e.seq, type: e.type, ts: e.timestamp.getTime(), status: e.status };
  if (e.message !== undefined) stored.message = e.message;
  if (e.progress !== undefined) stored.progress = e.progress;
  if (e.data !== undefined) stored.data = e.data;
  return stored;
}

/**
 * Encode a task's whole record as a write-ahead record: the durable form of a
 * task whose Automerge document is not written yet (see `LevelTaskRepository`).
 */
export function encodeWalRecord(record: TaskRecord): Uint8Array {
  const { createdAt, startedAt, completedAt, placement, ...rest } = record.state;
  const stored: StoredState = { ...rest, createdAt: createdAt.getTime() };
  if (startedAt !== undefined) stored.startedAt = startedAt.getTime();
  if (completedAt !== undefined) stored.completedAt = completedAt.getTime();
  if (placement !== undefined) stored.placement = { fixed: fixedPlacement(placement), moving: movingPlacement(placement) };
  const wal: WalRecord = { v: WAL_VERSION, request: record.request, state: stored, events: record.events.map(toStoredEvent) };
  return Buffer.from(JSON.stringify(wal), "utf8");
}

/** Decode a write-ahead record, refusing other layouts. */
export function decodeWalRecord(bytes: Uint8Array): TaskRecord {
  let wal: WalRecord;
  try {
    wal = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("utf8")) as WalRecord;
  } catch (err) {
    throw new CoderClawError("STORAGE_CORRUPT", `task write-ahead record cannot be parsed: ${(err as Error).message}`, { cause: err });
  }
  const id = typeof wal.state?.id === "string" ? wal.state.id : "?";
  if (wal.v !== WAL_VERSION) throw corrupt(id, `unsupported write-ahead layout version ${String(wal.v)}`);
  if (!TASK_STATUSES.includes(wal.state.status)) throw corrupt(id, `unknown status ${String(wal.state.status)}`);
  const { createdAt, startedAt, completedAt, placement, ...rest } = wal.state;
  const state: TaskState = { ...rest, createdAt: new Date(createdAt) };
  if (startedAt !== undefined) state.startedAt = new Date(startedAt);
  if (completedAt !== undefined) state.completedAt = new Date(completedAt);
  if (placement !== undefined) state.placement = readPlacement(placement.fixed ?? {}, placement.moving) ?? {};
  return { request: wal.request, state, events: wal.events.map(fromStoredEvent) };
}
