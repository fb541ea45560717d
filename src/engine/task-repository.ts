import { randomBytes } from "node:crypto";
import * as A from "@automerge/automerge";
import { CoderClawError } from "../contract/errors.js";
import { docRootReader, type RootReader } from "../storage/root-reader.js";
import type { TaskEvent, TaskListFilter, TaskPageFilter, TaskState, TaskStatus, TaskSubmitRequest } from "../contract/types.js";
import type { Database } from "../storage/level-database.js";
import type { LevelDocumentStore } from "../storage/level-document-store.js";
import { sameHeads } from "../storage/document-store.js";
import type { WriteOp } from "../storage/write-batcher.js";
import {
  decodeWalRecord,
  encodeTaskDoc,
  encodeWalRecord,
  readTaskDoc,
  readTaskIndexFields,
  homeTaskDocId,
  taskDocId,
  taskDocRoot,
  updateTaskDoc,
  type TaskDoc,
  type TaskIndexFields,
  type TaskRecord,
} from "./task-document.js";

/** How a task is stored: not yet, as a write-ahead record, or as its Automerge document. */
export type StoredAs = "none" | "wal" | "doc";

/** What changed in one task since it was last persisted. */
export interface TaskChangeSet {
  /**
   * The task now. Its events must be every event up to the end of `newEvents`
   * (a snapshot, not a list that keeps growing) unless `stored` is "doc", when
   * only `newEvents` are read.
   */
  record: TaskRecord;
  stored: StoredAs;
  /** State as last persisted; undefined when `stored` is "none". */
  previous: TaskState | undefined;
  /** Events not persisted yet, in order. */
  newEvents: readonly TaskEvent[];
  /**
   * Write the task's Automerge document now (a task stored as "doc" always is);
   * otherwise (re)write its write-ahead record, a plain encoding that costs a
   * fraction of a document change. Never set for a task stored as "none": its
   * first write is the record, so that it lands in one batch with the count.
   */
  materialize: boolean;
}

/** Durable home of tasks: documents plus the indexes derived from them. */
export interface TaskRepository {
  /** Persist many tasks' changes; resolves when all of them are durable. */
  persist(changes: readonly TaskChangeSet[]): Promise<void>;
  load(taskId: string): Promise<TaskRecord | undefined>;
  /** Ids newest first, from the index that fits the filter (callers re-check the filter on each state). */
  listIds(filter?: TaskListFilter): Promise<string[]>;
  /**
   * Up to `limit` ids newest first, older than `before` when given, each with its
   * position (what `before` takes to go on after it), from the index that fits.
   */
  scanIds(filter: Pick<TaskPageFilter, "status" | "sessionId" | "agentId" | "before">, limit: number): Promise<Array<{ id: string; position: string }>>;
  /** Ids of tasks whose stored status is not terminal, oldest first. */
  activeTaskIds(): Promise<string[]>;
  /** Number of tasks ever accepted. */
  count(): Promise<number>;
  /** Drop and recompute every index from the task documents and write-ahead records. */
  rebuildIndexes(): Promise<number>;
  /** Turn every write-ahead record into its task's document (recovery does this first). Returns how many. */
  replayWriteAhead(): Promise<number>;
  /**
   * True when this node admitted the task itself: its first record was written
   * here, from a submission this node accepted. A document another node wrote and
   * this one holds as a replica is never admitted, whatever it says.
   */
  isAdmitted(taskId: string): boolean;
  /**
   * The task this node admitted from `submittedBy` under idempotency key `key`
   * (`metadata.idempotencyKey`, indexed with the task's first record), if any.
   */
  taskIdForKey(submittedBy: string, key: string): string | undefined;
  /**
   * For a home written before admission records: admit the active tasks `own`
   * accepts, once. Returns how many were admitted (0 when already done).
   */
  adoptAdmissions(own: (record: TaskRecord) => boolean): Promise<number>;
}

/** Why a task document read from storage must not be taken as state, or undefined; see {@link LevelTaskRepository.screenStored}. */
export type StoredScreen = (docId: string, heads: readonly string[], root: RootReader) => string | undefined;

/** Options of {@link LevelTaskRepository}. */
export interface LevelTaskRepositoryOptions {
  /** Automerge actor id (hex) of the task documents this node writes. */
  actorId?: string;
  /**
   * Tasks whose documents stay on this node: kept under {@link homeTaskDocId},
   * which no replicated prefix covers, so they are never offered to peers.
   * Default: none.
   */
  homeOnly?: (request: Readonly<TaskSubmitRequest>) => boolean;
}

const IDX = "idx:";
const WAL = "wal:";
/** `adm:<id>`: this node admitted the task itself (written with its first record); only such tasks run here. */
const ADMITTED = "adm:";

function keyedKey(submittedBy: string, key: string): string {
  return `${KEYED}${submittedBy}\n${key}`;
}
/** `key:<submitter>\n<key>` -> task id: a repeated submission under the same idempotency key finds its task. */
const KEYED = "key:";
/** Set once every active task of a home written before admission records existed was sorted out. */
const ADMISSIONS_KEY = "meta:admissions";
/** Set once every task stored before the agent index existed is in it; until then an agent filter scans by time. */
const AGENT_INDEXED_KEY = "meta:agentIndexed";
/** Tasks of an older home put in the agent index per batch, in the background. */
const AGENT_BACKFILL_BATCH = 500;
const COUNT_KEY = "meta:taskCount";
const ACTIVE: readonly TaskStatus[] = ["pending", "planning", "running", "waiting"];
const MAX_LIST = 10_000;

const statusOfKey = (id: string): string => `${IDX}st:${id}`;
const pad = (ms: number): string => ms.toString().padStart(15, "0");
/** Where the id starts in a position `<pad(createdAt)>:<id>` (ids may hold ':' themselves). */
const POSITION_ID_AT = 16;
const statusKey = (s: TaskStatus, createdAt: number, id: string): string => `${IDX}status:${s}:${pad(createdAt)}:${id}`;
const sessionKey = (sid: string, createdAt: number, id: string): string => `${IDX}session:${sid}:${pad(createdAt)}:${id}`;
const timeKey = (createdAt: number, id: string): string => `${IDX}time:${pad(createdAt)}:${id}`;
const agentKey = (agentId: string, createdAt: number, id: string): string => `${IDX}agent:${agentId}:${pad(createdAt)}:${id}`;
/** The agent entry of a task, when its agent id is indexed at all. */
const agentOp = (type: "put" | "del", fields: Pick<TaskIndexFields, "agentId" | "createdAt">, id: string): WriteOp[] =>
  indexableAgent(fields.agentId) ? [type === "put" ? { type, key: agentKey(fields.agentId, fields.createdAt, id), value: EMPTY } : { type, key: agentKey(fields.agentId, fields.createdAt, id) }] : [];
/**
 * Agent ids the agent index holds: a key's prefix must name one agent only, so
 * no `:` (an id another member's document carries may be anything; one outside
 * this grammar is found by scanning, as before the index).
 */
const indexableAgent = (agentId: string | undefined): agentId is string => agentId !== undefined && /^[A-Za-z0-9._/-]{1,128}$/.test(agentId);
const EMPTY = new Uint8Array(0);

/** A task's fields the indexes are keyed by, fixed when it is accepted. */
type FixedIndexFields = Pick<TaskIndexFields, "createdAt" | "sessionId" | "agentId">;

/**
 * Index writes that move a task from status `from` (undefined: not indexed yet,
 * so its time, session and agent entries are written too) to `to`; none when unchanged.
 */
function statusIndexOps(taskId: string, fixed: FixedIndexFields, from: TaskStatus | undefined, to: TaskStatus): WriteOp[] {
  if (from === to) return [];
  const ops: WriteOp[] = [];
  const { createdAt: created, sessionId } = fixed;
  if (from === undefined) {
    ops.push({ type: "put", key: timeKey(created, taskId), value: EMPTY });
    if (sessionId !== undefined) ops.push({ type: "put", key: sessionKey(sessionId, created, taskId), value: EMPTY });
    ops.push(...agentOp("put", fixed, taskId));
  } else {
    ops.push({ type: "del", key: statusKey(from, created, taskId) });
  }
  ops.push({ type: "put", key: statusKey(to, created, taskId), value: EMPTY }, { type: "put", key: statusOfKey(taskId), value: Buffer.from(to) });
  return ops;
}

function fixedFieldsOf(state: TaskState): FixedIndexFields {
  return { createdAt: state.createdAt.getTime(), ...(state.sessionId !== undefined && { sessionId: state.sessionId }), ...(state.agentId !== undefined && { agentId: state.agentId }) };
}

function encodeCount(n: number): Uint8Array {
  return Buffer.from(String(n), "utf8");
}

/**
 * {@link TaskRepository} over the LevelDB document store: one Automerge document
 * per task, and status/session/time indexes written in the same atomic batch as
 * the document change (or write-ahead record) they derive from, so they can never
 * disagree after a crash.
 *
 * A task is first stored as a write-ahead record (`wal:<id>`, its whole record as
 * JSON, rewritten at each flush), then, when the engine asks, as its document,
 * written in one batch with the record's deletion.
 * Reads fall back to the record; recovery replays records into documents first.
 */
export class LevelTaskRepository implements TaskRepository {
  private total = -1;
  /** Whether every stored task is in the agent index (see {@link backfillAgentIndex}). */
  private agentIndexed = false;
  private backfill: { stopped: boolean; done: Promise<void> } | undefined;

  /**
   * Actor of the documents this repository creates: the configured one, else one
   * per repository, because drawing a random actor for each new document was a
   * fifth of the cost of creating it.
   */
  private readonly actorId: string;
  private readonly homeOnly: (request: Readonly<TaskSubmitRequest>) => boolean;
  private screen: StoredScreen | undefined;

  private constructor(
    private readonly db: Database,
    private readonly store: LevelDocumentStore,
    options: LevelTaskRepositoryOptions,
  ) {
    this.actorId = options.actorId ?? randomBytes(16).toString("hex");
    this.homeOnly = options.homeOnly ?? (() => false);
  }

  /**
   * The id of a task's document: under the replicated prefix unless the task
   * stays home, and there too for one written there before it stayed home (a
   * home from an older version), so that one task never has two documents.
   */
  private docIdOf(record: TaskRecord): string {
    const id = taskDocId(record.state.id);
    return this.homeOnly(record.request) && !this.store.holds(id) ? homeTaskDocId(record.state.id) : id;
  }

  /** The id of the document stored for `taskId`, if it has one. */
  private storedDocId(taskId: string): string | undefined {
    return [taskDocId(taskId), homeTaskDocId(taskId)].find((id) => this.store.holds(id));
  }

  /**
   * A repository over `store`, which also indexes the task documents other nodes
   * write (they arrive by sync), in the same batch as each received change.
   */
  static async open(db: Database, store: LevelDocumentStore, options: LevelTaskRepositoryOptions = {}): Promise<LevelTaskRepository> {
    const repository = new LevelTaskRepository(db, store, options);
    await repository.count();
    repository.agentIndexed = db.getSync(AGENT_INDEXED_KEY) !== undefined;
    if (!repository.agentIndexed && repository.total === 0) {
      // A new home needs no backfill: every task it stores is indexed as it is written.
      await db.put(AGENT_INDEXED_KEY, EMPTY);
      repository.agentIndexed = true;
    }
    store.deriveFromRemote<TaskIndexFields>({
      prefix: "task/",
      read: readTaskIndexFields,
      ops: (id, before, after) => repository.replicaIndexOps(id.slice("task/".length), before, after),
    });
    return repository;
  }

  /**
   * Index writes that take a received task document from `before` to `after`;
   * a document that no longer reads (or was removed) leaves the indexes.
   */
  private replicaIndexOps(taskId: string, before: TaskIndexFields | undefined, after: TaskIndexFields | undefined): WriteOp[] {
    if (after === undefined) {
      if (before === undefined) return [];
      const ops: WriteOp[] = [
        { type: "del", key: statusKey(before.status, before.createdAt, taskId) },
        { type: "del", key: timeKey(before.createdAt, taskId) },
        { type: "del", key: statusOfKey(taskId) },
      ];
      if (before.sessionId !== undefined) ops.push({ type: "del", key: sessionKey(before.sessionId, before.createdAt, taskId) });
      ops.push(...agentOp("del", before, taskId));
      return ops;
    }
    const ops = statusIndexOps(taskId, after, before?.status, after.status);
    // Fixed when a task is accepted; a writer that rewrites it still leaves one entry, under the agent it names now.
    if (before !== undefined && before.agentId !== after.agentId) ops.push(...agentOp("del", before, taskId), ...agentOp("put", after, taskId));
    if (before === undefined) ops.push({ type: "put", key: COUNT_KEY, value: encodeCount(++this.total) });
    return ops;
  }

  async persist(changes: readonly TaskChangeSet[]): Promise<void> {
    if (this.total < 0) await this.count();
    const writes: Array<Promise<unknown>> = [];
    const plain: WriteOp[] = [];
    const totalBefore = this.total;
    for (const change of changes) {
      const { record, stored, previous, newEvents, materialize } = change;
      const { state } = record;
      if (stored === "none") {
        this.total++;
        plain.push({ type: "put", key: ADMITTED + state.id, value: EMPTY });
        const key = state.metadata?.idempotencyKey;
        if (typeof key === "string" && state.submittedBy !== undefined) plain.push({ type: "put", key: keyedKey(state.submittedBy, key), value: Buffer.from(state.id, "utf8") });
      }
      // A task not stored yet has no persisted state, so it is indexed as new.
      const indexOps = statusIndexOps(state.id, fixedFieldsOf(state), previous?.status, state.status);

      const id = this.docIdOf(record);
      if (stored === "doc") {
        const fn = (doc: A.Doc<TaskDoc> | undefined) => updateTaskDoc(doc!, previous!, state, newEvents);
        writes.push(this.store.update<TaskDoc>(id, fn, "local", { ops: () => indexOps, raw: true }));
      } else if (materialize && stored === "wal") {
        // The document replaces the write-ahead record in one atomic batch: never both, never neither.
        indexOps.push({ type: "del", key: WAL + state.id });
        const built = encodeTaskDoc(taskDocRoot(record), this.actorId);
        writes.push(this.store.insert(id, built.bytes, built.heads, indexOps));
      } else {
        plain.push({ type: "put", key: WAL + state.id, value: encodeWalRecord(record) }, ...indexOps);
      }
    }
    // One count for the whole call, atomic with the tasks it counts: a new task's first write is always in `plain`.
    if (this.total !== totalBefore) plain.push({ type: "put", key: COUNT_KEY, value: encodeCount(this.total) });
    // The engine calls this from its group commit at the end of a turn: the write need not wait for another.
    const recorded = plain.length > 0 ? this.store.write(plain, { now: true }) : Promise.resolve();
    writes.push(recorded);
    await Promise.all(writes);
  }

  async replayWriteAhead(): Promise<number> {
    let n = 0;
    let writes: Array<Promise<unknown>> = [];
    for await (const [key, value] of this.db.iterator({ gte: WAL, lt: WAL + "\uffff" })) {
      const record = decodeWalRecord(value);
      const ops: WriteOp[] = [{ type: "del", key }];
      const built = encodeTaskDoc(taskDocRoot(record), this.actorId);
      writes.push(this.store.insert(this.docIdOf(record), built.bytes, built.heads, ops));
      n++;
      // Bounded batches keep memory flat however many records a crash left behind.
      if (writes.length >= 500) {
        await Promise.all(writes);
        writes = [];
      }
    }
    await Promise.all(writes);
    return n;
  }

  /**
   * Judge every task document as it is read from storage: one `screen` refuses
   * is read as damaged (STORAGE_CORRUPT naming why), so listings leave it out and
   * nothing takes it as state. The node checks with it that a replica still
   * carries its writer's valid signature over the heads stored.
   */
  screenStored(screen: StoredScreen): void {
    this.screen = screen;
  }

  taskIdForKey(submittedBy: string, key: string): string | undefined {
    const id = this.db.getSync(keyedKey(submittedBy, key));
    return id === undefined ? undefined : Buffer.from(id).toString("utf8");
  }

  isAdmitted(taskId: string): boolean {
    return this.db.getSync(ADMITTED + taskId) !== undefined;
  }

  async adoptAdmissions(own: (record: TaskRecord) => boolean): Promise<number> {
    if (this.db.getSync(ADMISSIONS_KEY) !== undefined) return 0;
    const ops: WriteOp[] = [];
    for (const id of await this.activeTaskIds()) {
      let record: TaskRecord | undefined;
      try {
        record = await this.load(id);
      } catch {
        continue;
      }
      if (record !== undefined && own(record)) ops.push({ type: "put", key: ADMITTED + id, value: EMPTY });
    }
    await this.store.write([...ops, { type: "put", key: ADMISSIONS_KEY, value: EMPTY }], { now: true });
    return ops.length;
  }

  async load(taskId: string): Promise<TaskRecord | undefined> {
    // The record first: it is deleted only in the batch that writes the document, so one of the two reads finds the task.
    const wal = await this.db.get(WAL + taskId);
    if (wal !== undefined) return decodeWalRecord(wal);
    const id = this.storedDocId(taskId);
    const doc = id === undefined ? undefined : await this.store.get<TaskDoc>(id);
    if (doc === undefined) return undefined;
    const refused = this.screened(id!, doc);
    if (refused !== undefined) throw new CoderClawError("STORAGE_CORRUPT", `task document ${taskId}: ${refused}`);
    return readTaskDoc(doc);
  }

  /**
   * Why a stored document must not be taken as state, or undefined. LevelDB
   * makes a written batch readable before this process hears that it was
   * written: for that moment the cached document still shows the heads before
   * the batch, while the records read beside it (its writer's signature) are
   * already those after, and its backend (changed in place) holds them. The
   * document shows a point in the history its writer signed, so it is sound.
   */
  private screened(id: string, doc: A.Doc<unknown>): string | undefined {
    if (this.screen === undefined) return undefined;
    const shown = A.getHeads(doc);
    const root = docRootReader(doc);
    const refused = this.screen(id, shown, root);
    if (refused === undefined) return undefined;
    const held = A.getBackend(doc).getHeads();
    return sameHeads(held, shown) || this.screen(id, held, root) !== undefined ? refused : undefined;
  }

  async listIds(filter: TaskListFilter = {}): Promise<string[]> {
    return (await this.scanIds(filter, Math.min(filter.limit ?? 100, MAX_LIST))).map((found) => found.id);
  }

  async scanIds(filter: Pick<TaskPageFilter, "status" | "sessionId" | "agentId" | "before">, limit: number): Promise<Array<{ id: string; position: string }>> {
    const prefix =
      filter.sessionId !== undefined
        ? `${IDX}session:${filter.sessionId}:`
        : this.agentIndexed && indexableAgent(filter.agentId)
          ? `${IDX}agent:${filter.agentId}:`
          : filter.status !== undefined
            ? `${IDX}status:${filter.status}:`
            : `${IDX}time:`;
    const out: Array<{ id: string; position: string }> = [];
    // Every index key ends in `<padded createdAt>:<id>`, so one position orders the same in each of them.
    const end = filter.before === undefined ? prefix + "\uffff" : prefix + filter.before;
    for await (const key of this.db.keys({ gte: prefix, lt: end, reverse: true, limit: Math.min(limit, MAX_LIST) })) {
      const position = key.slice(prefix.length);
      out.push({ id: position.slice(POSITION_ID_AT), position });
    }
    return out;
  }

  async activeTaskIds(): Promise<string[]> {
    const found: Array<{ key: string; id: string }> = [];
    for (const status of ACTIVE) {
      const prefix = `${IDX}status:${status}:`;
      for await (const key of this.db.keys({ gte: prefix, lt: prefix + "\uffff" })) {
        found.push({ key: key.slice(prefix.length), id: key.slice(key.lastIndexOf(":") + 1) });
      }
    }
    // Sorting by the zero-padded creation time restores submission order across statuses.
    return found.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0)).map((f) => f.id);
  }

  async count(): Promise<number> {
    if (this.total >= 0) return this.total;
    const raw = await this.db.get(COUNT_KEY);
    this.total = raw === undefined ? 0 : Number(Buffer.from(raw).toString("utf8"));
    return this.total;
  }

  /**
   * Put the tasks of a home written before the agent index existed into it, a
   * batch at a time, while the node runs; agent filters scan by time until it is
   * done. Tasks written meanwhile are indexed as they are written. Resolves when
   * done, stopped ({@link stopBackfill}) or failed (`onError` told).
   */
  backfillAgentIndex(onError: (error: Error) => void = () => {}): Promise<void> {
    if (this.agentIndexed) return Promise.resolve();
    if (this.backfill !== undefined) return this.backfill.done;
    const run = { stopped: false, done: Promise.resolve() };
    run.done = (async () => {
      let batch: string[] = [];
      const flush = async (): Promise<void> => {
        const ops: WriteOp[] = [];
        for (const key of batch) {
          const position = key.slice(`${IDX}time:`.length);
          const id = position.slice(POSITION_ID_AT);
          const record = await this.load(id).catch(() => undefined);
          if (record !== undefined) ops.push(...agentOp("put", { agentId: record.state.agentId, createdAt: Number(position.slice(0, POSITION_ID_AT - 1)) }, id));
        }
        batch = [];
        if (ops.length > 0 && !run.stopped) await this.store.write(ops);
      };
      for await (const key of this.db.keys({ gte: `${IDX}time:`, lt: `${IDX}time:\uffff` })) {
        if (run.stopped) return;
        batch.push(key);
        if (batch.length >= AGENT_BACKFILL_BATCH) await flush();
      }
      await flush();
      if (run.stopped) return;
      await this.store.write([{ type: "put", key: AGENT_INDEXED_KEY, value: EMPTY }], { now: true });
      this.agentIndexed = true;
    })().catch((error: Error) => {
      if (!run.stopped) onError(error);
    });
    this.backfill = run;
    return run.done;
  }

  /** Stop a {@link backfillAgentIndex} under way (before the database closes); it goes on at the next start. */
  async stopBackfill(): Promise<void> {
    if (this.backfill === undefined) return;
    this.backfill.stopped = true;
    await this.backfill.done;
  }

  async rebuildIndexes(): Promise<number> {
    const dels: WriteOp[] = [];
    for await (const key of this.db.keys({ gte: IDX, lt: IDX + "\uffff" })) dels.push({ type: "del", key });
    await this.db.batch(dels);
    let n = 0;
    let ops: WriteOp[] = [];
    // Records before documents, skipping documents already seen as records: a task whose document is written
    // between the two scans is then counted once, never missed.
    const records = async function* (repo: LevelTaskRepository, db: Database): AsyncGenerator<TaskRecord> {
      const seen = new Set<string>();
      for await (const value of db.values({ gte: WAL, lt: WAL + "\uffff" })) {
        const record = decodeWalRecord(value);
        seen.add(record.state.id);
        yield record;
      }
      for (const prefix of [taskDocId(""), homeTaskDocId("")]) {
        for await (const docId of repo.store.ids(prefix)) {
          const taskId = docId.slice(prefix.length);
          if (seen.has(taskId)) continue;
          seen.add(taskId);
          const record = await repo.load(taskId);
          if (record) yield record;
        }
      }
    };
    for await (const record of records(this, this.db)) {
      const { state } = record;
      ops.push(...statusIndexOps(state.id, fixedFieldsOf(state), undefined, state.status));
      n++;
      if (ops.length >= 3000) {
        await this.db.batch(ops);
        ops = [];
      }
    }
    ops.push({ type: "put", key: COUNT_KEY, value: encodeCount(n) }, { type: "put", key: AGENT_INDEXED_KEY, value: EMPTY });
    await this.db.batch(ops);
    this.total = n;
    this.agentIndexed = true;
    return n;
  }
}
