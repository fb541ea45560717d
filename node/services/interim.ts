import type { LocalCore } from "../../src/runtime/local-core.js";
import type { AuditLog } from "../../src/security/index.js";
import { createPeerRateLimiter } from "../../protocols/framing/index.js";
import { AUDIT_PROTOCOL } from "../../protocols/audit/messages.js";
import { CAPS_PROTOCOL } from "../../protocols/capability/messages.js";
import { TASK_PROTOCOL } from "../../protocols/task/index.js";
import { startAuditReplicator } from "../audit/audit-replicator.js";
import type { NodeOptions } from "../node-api.js";
import { createCapabilityDirectory } from "../routing/index.js";
import type { NodeSecurity } from "../security/node-security.js";
import { createLevelReplayStore } from "../tasks/replay-store.js";
import { TaskClient } from "../tasks/task-client.js";
import { startTaskServer } from "../tasks/task-server.js";
import { defineService } from "./mesh-service.js";

export function capabilityService(deps: { core: LocalCore; version: string; maxConcurrentTasks: number }) {
  const { core } = deps;
  return defineService(CAPS_PROTOCOL, (context) =>
    createCapabilityDirectory({
      libp2p: context.libp2p,
      privateKey: context.identity.privateKey,
      version: deps.version,
      isMember: context.isMember,
      local: () => {
        const c = core.engine.counters();
        return {
          agents: core.agents.list().map((a) => a.info.id),
          skills: [],
          capabilities: [...new Set(core.agents.list().flatMap((a) => a.info.capabilities))],
          load: c.runningExecutions + c.queuedTasks,
          maxConcurrency: deps.maxConcurrentTasks,
        };
      },
      onError: (error) => context.report(error),
    }),
  );
}

export function taskServerService(deps: { core: LocalCore; security: NodeSecurity; options: NodeOptions }) {
  const { core, security, options } = deps;
  return defineService(TASK_PROTOCOL, (context) =>
    startTaskServer({
      libp2p: context.libp2p,
      engine: core.engine,
      agents: core.agents,
      meshId: context.meshId,
      isMember: context.isMember,
      authorize: options.authorize ?? ((submit) => security.authorizeSubmit(submit.peer, submit.envelope)),
      authorizeCancel: (peer, taskId) => security.authorizeCancel(peer, taskId),
      replayStore: createLevelReplayStore({ db: core.db, write: (ops) => core.batcher.write(ops) }),
      limiter: createPeerRateLimiter({ framesPerSecond: 5000, burst: 10_000 }),
      ...(options.leaseIntervalMs !== undefined && { leaseIntervalMs: options.leaseIntervalMs }),
      onError: (peer, err) => context.report(err, peer),
    }),
  );
}

export function taskClientService() {
  return defineService(TASK_PROTOCOL, async (context) => {
    const client = new TaskClient({ libp2p: context.libp2p, identity: context.identity, meshId: context.meshId });
    return Object.assign(client, { stop: () => client.close() });
  });
}

export function auditReplicationService(audit: AuditLog) {
  return defineService(AUDIT_PROTOCOL, (context) =>
    startAuditReplicator({ libp2p: context.libp2p, audit, isMember: context.isMember, members: context.connectedMembers, onError: (peer, err) => context.report(err, peer) }),
  );
}
