import type { DeviceIdentity } from "../../identity/index.js";
import type { LocalCore } from "../../src/runtime/local-core.js";
import { quarantineUnsignedReplicas } from "./legacy-replicas.js";
import { createQuarantine, type Quarantine } from "./quarantine.js";
import { createReplicaAuthority, type ReplicaAuthority } from "../../protocols/sync/replica-authority.js";
import { TASK_WRITER_RULE } from "./task-writer-rule.js";
import { WORKFLOW_WRITER_RULE } from "./workflow-writer-rule.js";

/** Options of {@link openTaskReplicas}. */
export interface TaskReplicaOptions {
  core: Pick<LocalCore, "db" | "store" | "batcher" | "repository">;
  identity: DeviceIdentity;
  /** Members may write their own task documents; others' are refused. */
  isMember: (peer: string) => boolean;
  /** Told of every stored document set aside (kept as evidence, never read as state). */
  onQuarantined: (id: string, reason: string) => void;
}

/** Who may write the replicated task documents, and where what fails that is kept. */
export interface TaskReplicas {
  authority: ReplicaAuthority;
  quarantine: Quarantine;
}

/**
 * The trust boundary of replicated task state on this node: task documents
 * have one writer, their executor, and every change carries its signature over
 * the heads it ends at. Stored documents are checked again when read, and
 * replicas from before signed replication are set aside once.
 */
export async function openTaskReplicas(options: TaskReplicaOptions): Promise<TaskReplicas> {
  const { core, identity } = options;
  const rules = [TASK_WRITER_RULE, WORKFLOW_WRITER_RULE];
  const authority = createReplicaAuthority({ identity, db: core.db, rules, mayWrite: options.isMember });
  const quarantine = createQuarantine({ db: core.db, write: (ops) => core.batcher.write(ops) });
  core.repository.screenStored((id, heads, root) => authority.checkStored(id, heads, root));
  await quarantineUnsignedReplicas({ store: core.store, db: core.db, authority, rules, quarantine, self: identity.peerId, onQuarantined: options.onQuarantined });
  return { authority, quarantine };
}
