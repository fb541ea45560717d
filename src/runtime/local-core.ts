import { mkdirSync } from "node:fs";
import type { TaskSubmitRequest } from "../contract/types.js";
import type { AgentRegistry } from "../agents/executor.js";
import { createBuiltinRegistry } from "../agents/builtin.js";
import { createProcessRecords, type ProcessRecords } from "../agents/process-records.js";
import { TaskEngine } from "../engine/task-engine.js";
import type { TaskWorkspaces } from "../engine/execution-environment.js";
import { LevelTaskRepository } from "../engine/task-repository.js";
import { openDatabase, type Database } from "../storage/level-database.js";
import { LevelDocumentStore } from "../storage/level-document-store.js";
import { WriteBatcher } from "../storage/write-batcher.js";
import { dataPaths, resolveDataDir } from "./data-dir.js";
import type { SandboxMode } from "../agents/sandbox.js";
import type { ApprovalPolicy, OpenGate } from "../engine/approval-gate.js";

/** What a local runtime needs: where its data lives and what it can run. */
export interface LocalContext {
  /** Data directory; default `$CODERCLAW_HOME`, else `~/.coderclaw`. */
  dataDir?: string;
  /** Agents this node runs; default the built-in `echo` and `sleep`. */
  agents?: AgentRegistry;
  maxConcurrentTasks?: number;
  defaultTimeoutMs?: number;
  maxInputBytes?: number;
  /** Bytes of output each task keeps and streams (the engine's `maxOutputBytes`). */
  maxOutputBytes?: number;
  defaultAgentId?: string;
  shutdownGraceMs?: number;
  /** The node's device id, recorded as each task's `executorId`. */
  executorId?: string;
  /** Automerge actor id (hex) for this node's document changes. */
  actorId?: string;
  /** May a request run in the repository at `metadata.repositoryPath`? Default: never. */
  allowRepository?: (path: string, request: Readonly<TaskSubmitRequest>) => boolean;
  /** False: read and queue only, run nothing, recover nothing (see TaskEngineOptions.runTasks). */
  runTasks?: boolean;
  /** Workspaces of tasks that carry code (see TaskEngineOptions.workspaces). */
  workspaces?: TaskWorkspaces;
  /** Tasks that get their document only when they end (see TaskEngineOptions.documentOnlyAtEnd). */
  documentOnlyAtEnd?: (request: Readonly<TaskSubmitRequest>) => boolean;
  /** Tasks whose documents stay on this node, never replicated (see LevelTaskRepositoryOptions.homeOnly). */
  homeOnly?: (request: Readonly<TaskSubmitRequest>) => boolean;
  /** A stored task that cannot be read: listing skips it and reports it here. */
  onUnreadable?: (taskId: string, error: Error) => void;
  /** Work the core does in the background that failed (the agent index of an older home). */
  onBackgroundError?: (error: Error) => void;
  /** How processes run for work other devices submit (see TaskEngineOptions.sandbox). Default: sandboxed, required. */
  sandbox?: { mode: SandboxMode; bwrap?: string };
  /** Tasks that wait for an approver's decision before they start (see TaskEngineOptions.approvalPolicy). */
  approvalPolicy?: ApprovalPolicy;
  /** Told of each task that starts to wait for a decision. */
  onApprovalNeeded?: (gate: OpenGate) => void;
  /** Only to measure what durable completion costs (see TaskEngineOptions.announceBeforeDurable). */
  announceBeforeDurable?: boolean;
}

/** The storage and engine of one node, opened together and closed together. */
export interface LocalCore {
  dataDir: string;
  db: Database;
  batcher: WriteBatcher;
  store: LevelDocumentStore;
  repository: LevelTaskRepository;
  engine: TaskEngine;
  agents: AgentRegistry;
  /** Graceful: engine shutdown, flush, close the database. Idempotent. */
  close(): Promise<void>;
}

/** Open the data directory's database and start the task engine on it (with recovery). */
export async function openLocalCore(context: LocalContext = {}): Promise<LocalCore> {
  const dataDir = resolveDataDir(context.dataDir);
  const paths = dataPaths(dataDir);
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const db = await openDatabase(paths.database);
  try {
    const batcher = new WriteBatcher(db);
    const storeOptions = context.actorId === undefined ? { batcher, path: paths.database } : { batcher, path: paths.database, actorId: context.actorId };
    const store = new LevelDocumentStore(db, storeOptions);
    const repository = await LevelTaskRepository.open(db, store, {
      ...(context.actorId !== undefined && { actorId: context.actorId }),
      ...(context.homeOnly && { homeOnly: context.homeOnly }),
    });
    const agents = context.agents ?? createBuiltinRegistry();
    let processes: ProcessRecords | undefined;
    if (context.runTasks !== false) {
      // Holding the database lock, we are the only runner of this directory: groups still
      // recorded were left by a previous run that died, and must stop before recovery re-runs their tasks.
      processes = createProcessRecords(paths.processes);
      processes.reapLeftovers();
    }
    const engine = await TaskEngine.open({
      repository,
      agents,
      dataDir,
      ...(context.allowRepository && { allowRepository: context.allowRepository }),
      ...(context.maxConcurrentTasks !== undefined && { maxConcurrentTasks: context.maxConcurrentTasks }),
      ...(context.defaultTimeoutMs !== undefined && { defaultTimeoutMs: context.defaultTimeoutMs }),
      ...(context.maxInputBytes !== undefined && { maxInputBytes: context.maxInputBytes }),
      ...(context.maxOutputBytes !== undefined && { maxOutputBytes: context.maxOutputBytes }),
      ...(context.defaultAgentId !== undefined && { defaultAgentId: context.defaultAgentId }),
      ...(context.shutdownGraceMs !== undefined && { shutdownGraceMs: context.shutdownGraceMs }),
      ...(context.executorId !== undefined && { executorId: context.executorId }),
      ...(context.runTasks !== undefined && { runTasks: context.runTasks }),
      ...(context.onUnreadable && { onUnreadable: context.onUnreadable }),
      ...(context.workspaces && { workspaces: context.workspaces }),
      ...(context.documentOnlyAtEnd && { documentOnlyAtEnd: context.documentOnlyAtEnd }),
      ...(context.sandbox && { sandbox: context.sandbox }),
      ...(processes !== undefined && { processes }),
      ...(context.announceBeforeDurable === true && { announceBeforeDurable: true }),
      ...(context.approvalPolicy && { approvalPolicy: context.approvalPolicy }),
      ...(context.onApprovalNeeded && { onApprovalNeeded: context.onApprovalNeeded }),
    });
    void repository.backfillAgentIndex((error) => context.onBackgroundError?.(new Error(`indexing the tasks by agent: ${error.message}`, { cause: error })));
    let closing: Promise<void> | undefined;
    return {
      dataDir, db, batcher, store, repository, engine, agents,
      close: () =>
        (closing ??= (async () => {
          await engine.shutdown();
          await repository.stopBackfill();
          await store.close();
          await db.close();
        })()),
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}
