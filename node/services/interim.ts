import type { LocalCore } from "../../src/runtime/local-core.js";
import { createPeerRateLimiter } from "../../protocols/framing/index.js";
import { TASK_PROTOCOL } from "../../protocols/task/index.js";
import type { NodeOptions } from "../node-api.js";
import type { NodeSecurity } from "../security/node-security.js";
import { createLevelReplayStore } from "../tasks/replay-store.js";
import { TaskClient } from "../tasks/task-client.js";
import { startTaskServer } from "../tasks/task-server.js";
import { defineService } from "./mesh-service.js";

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
