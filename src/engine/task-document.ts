import * as A from "@automerge/automerge";
import { CoderClawError } from "../contract/errors.js";
import type { TaskEvent, TaskEventType, TaskState, TaskStatus, TaskSubmitRequest } from "../contract/types.js";
import { TASK_STATUSES } from "../contract/types.js";

/** Version of the task document layout; documents of another version are refused on read. */
export const TASK_DOC_VERSION = 1;

/** Document id of a task in the document store. */
export function taskDocId(taskId: string): string {
  return `task/${taskId}`;
}

type IS = A.ImmutableString;

/**
 * The Automerge shape of one task. Scalars that are never edited concurrently are
 * ImmutableStrings (cheaper than collaborative text); each history entry is one
 * ImmutableString of JSON, so appending an event is one list insert rather than a
 * map of fields, which keeps per-task write cost low.
 */
export interface TaskDoc {
  v: number;
  id: IS;
  status: IS;
  description: IS;
  input: IS;
  agentId?: IS;
  sessionId?: IS;
  parentTaskId?: IS;
  model?: IS;
  thinking?: IS;
  metadata?: IS;
  executorId?: IS;
  createdAt: number;
  startedAt?: number;
  completedAt?: number;
  progress?: number;
  output?: IS;
  error?: IS;
  events: IS[];
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

const im = (s: string): IS => new A.ImmutableString(s);
const str = (v: IS | undefined): string | undefined => (v === undefined ? undefined : v.toString());

function encodeEvent(e: TaskEvent): IS {
  const stored: StoredEvent = { seq: e.seq, type: e.type, ts: e.timestamp.getTime(), status: e.status };
  if (e.message !== undefined) stored.message = e.message;
  if (e.progress !== undefined) stored.progress = e.progress;
  if (e.data !== undefined) stored.data = e.data;
  return im(JSON.stringify(stored));
}

function decodeEvent(raw: IS): TaskEvent {
  const s = JSON.parse(raw.toString()) as StoredEvent;
  const e: TaskEvent = { seq: s.seq, type: s.type, timestamp: new Date(s.ts), status: s.status };
  if (s.message !== undefined) e.message = s.message;
  if (s.progress !== undefined) e.progress = s.progress;
  if (s.data !== undefined) e.data = s.data;
  return e;
}

/** Optional scalar fields mirrored between TaskState and the document. */
const OPTIONAL_TEXT = ["agentId", "sessionId", "parentTaskId", "executorId", "output", "error"] as const;
const OPTIONAL_TIME = ["startedAt", "completedAt"] as const;

/** Build the document of a new task (one Automerge change). */
export function createTaskDoc(record: TaskRecord, actor?: string): A.Doc<TaskDoc> {
  const init = actor === undefined ? A.init<TaskDoc>() : A.init<TaskDoc>({ actor });
  return A.change(init, (d) => {
    const { state, request } = record;
    d.v = TASK_DOC_VERSION;
    d.id = im(state.id);
    d.status = im(state.status);
    d.description = im(state.description);
    d.input = im(request.input);
    d.createdAt = state.createdAt.getTime();
    if (request.model !== undefined) d.model = im(request.model);
    if (request.thinking !== undefined) d.thinking = im(request.thinking);
    if (state.metadata !== undefined) d.metadata = im(JSON.stringify(state.metadata));
    for (const k of OPTIONAL_TEXT) if (state[k] !== undefined) d[k] = im(state[k]!);
    for (const k of OPTIONAL_TIME) if (state[k] !== undefined) d[k] = state[k]!.getTime();
    if (state.progress !== undefined) d.progress = state.progress;
    d.events = record.events.map(encodeEvent);
  });
}

/**
 * Apply the current state and the events not yet stored to a task document, as
 * one change that touches only the fields that differ.
 */
export function updateTaskDoc(doc: A.Doc<TaskDoc>, state: TaskState, newEvents: readonly TaskEvent[]): A.Doc<TaskDoc> {
  return A.change(doc, (d) => {
    if (d.status.toString() !== state.status) d.status = im(state.status);
    for (const k of OPTIONAL_TEXT) {
      const v = state[k];
      if (v !== undefined && str(d[k]) !== v) d[k] = im(v);
    }
    for (const k of OPTIONAL_TIME) {
      const v = state[k];
      if (v !== undefined && d[k] !== v.getTime()) d[k] = v.getTime();
    }
    if (state.progress !== undefined && d.progress !== state.progress) d.progress = state.progress;
    for (const e of newEvents) d.events.push(encodeEvent(e));
  });
}

function corrupt(id: string, why: string): CoderClawError {
  return new CoderClawError("STORAGE_CORRUPT", `task document ${id}: ${why}`);
}

/** Read a task document back into a record, refusing documents of another layout. */
export function readTaskDoc(doc: A.Doc<TaskDoc>): TaskRecord {
  const id = str(doc.id) ?? "?";
  if (doc.v !== TASK_DOC_VERSION) throw corrupt(id, `unsupported layout version ${String(doc.v)}`);
  const status = str(doc.status) as TaskStatus;
  if (!TASK_STATUSES.includes(status)) throw corrupt(id, `unknown status ${String(status)}`);
  const state: TaskState = { id, status, description: str(doc.description) ?? "", createdAt: new Date(doc.createdAt) };
  for (const k of OPTIONAL_TEXT) {
    const v = str(doc[k]);
    if (v !== undefined) state[k] = v;
  }
  for (const k of OPTIONAL_TIME) if (doc[k] !== undefined) state[k] = new Date(doc[k]!);
  if (doc.progress !== undefined) state.progress = doc.progress;
  const metadata = str(doc.metadata);
  if (metadata !== undefined) state.metadata = JSON.parse(metadata) as Record<string, unknown>;
  const request: TaskSubmitRequest = { description: state.description, input: str(doc.input) ?? "" };
  for (const k of ["agentId", "sessionId", "parentTaskId"] as const) if (state[k] !== undefined) request[k] = state[k];
  if (doc.model !== undefined) request.model = doc.model.toString();
  if (doc.thinking !== undefined) request.thinking = doc.thinking.toString();
  if (state.metadata !== undefined) request.metadata = state.metadata;
  return { request, state, events: doc.events.map(decodeEvent) };
}
