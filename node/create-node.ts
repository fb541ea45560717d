import "../src/polyfills.js";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { multiaddr } from "@multiformats/multiaddr";
import { KEEP_ALIVE, type PeerId } from "@libp2p/interface";
import { InviteBook, loadOrCreateDeviceIdentity, type DeviceIdentity } from "../identity/index.js";
import type { AgentRegistry } from "../src/agents/executor.js";
import type { SandboxMode } from "../src/agents/sandbox.js";
import { dataPaths, resolveDataDir } from "../src/runtime/data-dir.js";
import { openLocalCore, type LocalCore } from "../src/runtime/local-core.js";
import { VERSION } from "../src/version.js";
import { ClusterTransportAdapter } from "./cluster-adapter.js";
import { actorIdOf } from "./device-actor.js";
import { createMeshLibp2p, type MeshLibp2p } from "./libp2p/create-libp2p.js";
import { Membership } from "./mesh/membership.js";
import { importLegacyStatements } from "./mesh/legacy-statements.js";
import { StatementSet } from "./mesh/statement-set.js";
import { startStatementSync, type StatementSync } from "./mesh/statement-sync.js";
import { PairingService } from "./mesh/pairing-service.js";
import { createCapabilityDirectory, type CapabilityDirectory } from "./routing/index.js";
import { createQuarantine, createReplicaAuthority, createSyncEngine, quarantineUnsignedReplicas, TASK_WRITER_RULE, type Quarantine, type SyncEngine } from "./sync/index.js";
import { TaskClient } from "./tasks/task-client.js";
import { createPeerRateLimiter } from "../protocols/framing/index.js";
import { NodeSecurity } from "./security/node-security.js";
import { startAuditReplicator, type AuditReplicator } from "./audit/audit-replicator.js";
import { createLevelReplayStore } from "./tasks/replay-store.js";
import { startTaskServer, type AuthorizeSubmit, type TaskServer } from "./tasks/task-server.js";

/** Options of {@link createNode}. */
export interface NodeOptions {
  /** Data directory; default `$CODERCLAW_HOME`, else `~/.coderclaw`. */
  dataDir?: string;
  /** Listen multiaddrs. Default `/ip4/127.0.0.1/tcp/0` (pass `/ip4/0.0.0.0/tcp/4001` to serve a LAN). */
  listen?: string[];
  /** Peers (multiaddrs with `/p2p/<id>`) to dial at start. */
  bootstrap?: string[];
  /** LAN discovery by mDNS. Default true. */
  mdns?: boolean;
  /** Agents this node runs; default the built-in `echo` and `sleep`. */
  agents?: AgentRegistry;
  maxConcurrentTasks?: number;
  defaultTimeoutMs?: number;
  /** Lease renewals to submitters, ms. Default 1,000. */
  leaseIntervalMs?: number;
  /** Executor silence after which a remote task is presumed lost, ms. Default 10,000. */
  leaseTimeoutMs?: number;
  /** Security re-check of remote submissions; default: the node's security service (grants, policies, trust). */
  authorize?: AuthorizeSubmit;
  /** Inbound connections per second from one host; raise for many nodes on one machine. */
  inboundConnectionThreshold?: number;
  /** Errors of background work (sync, routing, misbehaving peers). Default: ignored. */
  onError?: (where: string, error: Error) => void;
  /** Project directory holding `.coderClaw/security.yaml` and `team-policy.yaml`. Default: the data directory. */
  workspaceDir?: string;
  /**
   * How processes run for work other devices submit: `required` (default) in a
   * bubblewrap sandbox (refused where bwrap is missing), `off` unsandboxed.
   */
  sandbox?: SandboxMode;
  /** The bubblewrap binary; default /usr/bin/bwrap. */
  bwrapPath?: string;
  /** Every pairing attempt on either side, with the comparison code on success (for the operator; the audit log records it too). */
  onPairing?: (event: { role: "inviter" | "joiner"; ok: boolean; peer?: string; detail: string }) => void;
}

/** A connected peer as `coderclaw peers` shows it. */
export interface PeerInfo {
  peerId: string;
  level: string;
  addrs: string[];
  latencyMs?: number;
  /** From the member's signed capability record, when it answered. */
  agents?: string[];
  capabilities?: string[];
  load?: number;
}

/** A running mesh node. */
export interface CoderClawNode {
  readonly peerId: string;
  readonly identity: DeviceIdentity;
  readonly dataDir: string;
  readonly libp2p: MeshLibp2p;
  readonly core: LocalCore;
  readonly membership: Membership;
  readonly pairing: PairingService;
  readonly directory: CapabilityDirectory;
  readonly sync: SyncEngine;
  /** The mesh's signed statements and policy texts: a grow-only set of self-authenticating items. */
  readonly statementSet: StatementSet;
  /** Replication of {@link statementSet} with members. */
  readonly statements: StatementSync;
  /** Replicated content this node refused or set aside, kept as evidence. */
  readonly quarantine: Quarantine;
  readonly client: TaskClient;
  /** The runtime contract over the mesh. */
  readonly adapter: ClusterTransportAdapter;
  /** RBAC, policies, sessions and this node's audit log. */
  readonly security: NodeSecurity;
  /** Audit log replication with members. */
  readonly auditReplicator: AuditReplicator;
  /**
   * Found a mesh with this device as founder and admin, and sign its default
   * policy (members may send each other work). Returns the mesh id.
   */
  createMesh(name: string): Promise<string>;
  /** Addresses other nodes can dial, with `/p2p/<id>`. */
  multiaddrs(): string[];
  /** Dial a peer by multiaddr (with `/p2p/<id>`). */
  dial(addr: string): Promise<void>;
  /** Connected peers with their trust level and latency. */
  peers(): Promise<PeerInfo[]>;
  /** When each peer was last connected to this node (ms since epoch), since this node started. */
  lastSeen(peerId: string): number | undefined;
  /**
   * Refuse a peer locally until unblocked, whatever its trust (a misbehaving or
   * quarantined machine): its connections are closed and new ones refused.
   */
  block(peerId: string): void;
  unblock(peerId: string): void;
  /** Re-publish this node's capability record (after its load or agents changed). */
  publish(): Promise<void>;
  /** Graceful stop: tasks, sync, libp2p, storage. Idempotent. */
  stop(): Promise<void>;
}

/** How long a peer that kept sending forged replicated changes stays disconnected. */
const OFFENDER_BLOCK_MS = 10 * 60_000;

/**
 * Start a mesh node: device identity, storage and task engine, libp2p with the
 * membership gater, document sync, capability records, the task protocol and
 * pairing. Another Node app embeds a node with this one call.
 */
export async function createNode(options: NodeOptions = {}): Promise<CoderClawNode> {
  const dataDir = resolveDataDir(options.dataDir);
  const paths = dataPaths(dataDir);
  const identity = await loadOrCreateDeviceIdentity(dataDir);
  const meshFile = join(paths.identity, "mesh-id");
  const readPinned = (): string | undefined => (existsSync(meshFile) ? readFileSync(meshFile, "utf8").trim() || undefined : undefined);
  const report = (where: string) => (error: Error) => options.onError?.(where, error);

  const core = await openLocalCore({
    dataDir,
    executorId: identity.peerId,
    actorId: actorIdOf(identity.peerId),
    ...(options.agents && { agents: options.agents }),
    ...(options.maxConcurrentTasks !== undefined && { maxConcurrentTasks: options.maxConcurrentTasks }),
    ...(options.defaultTimeoutMs !== undefined && { defaultTimeoutMs: options.defaultTimeoutMs }),
    sandbox: { mode: options.sandbox ?? "required", ...(options.bwrapPath !== undefined && { bwrap: options.bwrapPath }) },
    onUnreadable: (taskId, error) => report("storage")(new Error(`task ${taskId} cannot be read and is left out of listings: ${error.message}`, { cause: error })),
  });
  const stack: Array<() => Promise<unknown>> = [() => core.close()];
  const unwind = async (): Promise<void> => {
    for (const f of stack.splice(0).reverse()) await f().catch(() => undefined);
  };

  try {
    let enforce = (): void => undefined;
    let security: NodeSecurity | undefined;
    // The set checks each statement against the mesh the membership knows, so it is made first and asks later.
    let view: Membership | undefined;
    const set = await StatementSet.open({ db: core.db, write: (ops) => core.batcher.write(ops), admissible: (st) => view?.admissible(st) });
    const membership = Membership.open({
      set,
      identity,
      pinnedMeshId: readPinned,
      onChange: () => {
        enforce();
        void security?.refresh().catch((err: Error) => report("security")(err));
      },
    });
    view = membership;
    stack.push(async () => membership.close());
    await importLegacyStatements(core.store, set);
    security = await NodeSecurity.open({
      db: core.db,
      set,
      identity,
      membership,
      workspaceDir: options.workspaceDir ?? dataDir,
      write: (ops) => core.batcher.write(ops),
      agents: core.agents,
    });
    const sec = security;
    stack.push(async () => sec.close());
    const isMember = (peer: string): boolean => membership.isMember(peer);
    const inviteBook = await InviteBook.openFile(join(paths.identity, "invites.json"));
    let allowed: string | undefined;
    let pairing: PairingService | undefined;
    const blocked = new Set<string>();

    const libp2p = await createMeshLibp2p({
      privateKey: identity.privateKey,
      listen: options.listen ?? ["/ip4/127.0.0.1/tcp/0"],
      ...(options.bootstrap && { bootstrap: options.bootstrap }),
      mdns: options.mdns ?? true,
      ...(options.inboundConnectionThreshold !== undefined && { inboundConnectionThreshold: options.inboundConnectionThreshold }),
      // Strangers may connect only to pair, and only while this node has an open invite.
      admit: (peer) => !blocked.has(peer) && (isMember(peer) || peer === allowed || (pairing?.hasOpenInvites() ?? false) || (pairing?.isPairing(peer) ?? false)),
    });
    stack.push(async () => libp2p.stop());
    const seen = new Map<string, number>();
    const touch = (evt: CustomEvent<{ toString(): string }>): void => void seen.set(evt.detail.toString(), Date.now());
    libp2p.addEventListener("peer:connect", touch);
    libp2p.addEventListener("peer:disconnect", touch);

    pairing = new PairingService({
      libp2p,
      identity,
      membership,
      inviteBook,
      pinMesh: (meshId) => writeFileSync(meshFile, meshId + "\n", { mode: 0o600 }),
      allowPeer: (peer) => (allowed = peer),
      // The founder gives each device it pairs the roles of its level, signed and replicated.
      statementsForJoiner: (joiner, level) => {
        const grant = sec.isAdmin() ? sec.grantForLevel(joiner, level) : undefined;
        return grant ? [grant] : [];
      },
      onPairing: (e) => {
        options.onPairing?.(e);
        void sec.record({ action: `pairing.${e.role}`, userId: e.peer ?? "(unknown)", ...(e.peer && { deviceId: e.peer }), result: e.ok ? "allowed" : "denied", reason: e.detail }).catch(() => undefined);
      },
    });
    await pairing.start();

    const statementSync = await startStatementSync({
      libp2p,
      set,
      isMember,
      onRefused: (peer, r) =>
        void sec.record({ action: "statements.refused", userId: peer, deviceId: peer, resource: `${r.kind} ${r.id}`, result: "denied", reason: r.reason }).catch(report("audit")),
      onError: (peer, err) => report(`statements ${peer}`)(err),
    });
    stack.push(() => statementSync.stop());

    // Task documents have one writer, their executor: every change carries its signature over the heads it ends at.
    const writerRules = [TASK_WRITER_RULE];
    const authority = createReplicaAuthority({ identity, db: core.db, rules: writerRules, mayWrite: isMember });
    const quarantine = createQuarantine({ db: core.db, write: (ops) => core.batcher.write(ops) });
    const setAside = (resource: string, reason: string, peer?: string): void =>
      void sec.record({ action: "sync.refused", userId: peer ?? identity.peerId, deviceId: peer ?? identity.peerId, resource, result: "denied", reason }).catch(report("audit"));
    core.repository.screenStored((id, heads, root) => authority.checkStored(id, heads, root));
    await quarantineUnsignedReplicas({ store: core.store, db: core.db, authority, rules: writerRules, quarantine, self: identity.peerId, onQuarantined: (id, reason) => setAside(id, reason) });
    const sync = await createSyncEngine({
      libp2p,
      store: core.store,
      authority,
      isMember,
      onRefused: (r) => {
        void quarantine.keep({ at: Date.now(), id: r.id, reason: r.reason, peer: r.peer, writer: r.writer, bytes: r.changes }).catch(report("quarantine"));
        setAside(r.id, r.reason, r.peer);
      },
      // A member that keeps sending forged changes is cut off for a while, whatever its trust.
      onOffender: (peer) => {
        blocked.add(peer);
        enforce();
        setTimeout(() => blocked.delete(peer), OFFENDER_BLOCK_MS).unref();
      },
      onError: (peer, err) => report(`sync ${peer}`)(err),
    });
    stack.push(async () => sync.stop());

    const agents = core.agents;
    const directory = await createCapabilityDirectory({
      libp2p,
      privateKey: identity.privateKey,
      version: VERSION,
      isMember,
      local: () => {
        const c = core.engine.counters();
        return {
          agents: agents.list().map((a) => a.info.id),
          skills: [],
          capabilities: [...new Set(agents.list().flatMap((a) => a.info.capabilities))],
          load: c.runningExecutions + c.queuedTasks,
          maxConcurrency: options.maxConcurrentTasks ?? 10,
        };
      },
      onError: report("routing"),
    });
    stack.push(async () => directory.stop());

    const server: TaskServer = await startTaskServer({
      libp2p,
      engine: core.engine,
      agents,
      meshId: () => membership.meshId,
      isMember,
      authorize: options.authorize ?? ((submit) => sec.authorizeSubmit(submit.peer, submit.envelope)),
      authorizeCancel: (peer, taskId) => sec.authorizeCancel(peer, taskId),
      replayStore: createLevelReplayStore({ db: core.db, write: (ops) => core.batcher.write(ops) }),
      // A flooding member is cut off on its own channels; everyone else keeps being served.
      limiter: createPeerRateLimiter({ framesPerSecond: 5000, burst: 10_000 }),
      ...(options.leaseIntervalMs !== undefined && { leaseIntervalMs: options.leaseIntervalMs }),
      onError: (peer, err) => report(`task ${peer}`)(err),
    });
    stack.push(async () => server.stop());
    const client = new TaskClient({ libp2p, identity, meshId: () => membership.meshId });
    stack.push(() => client.close());
    const connectedMembers = (): string[] => [...new Set(libp2p.getConnections().map((c) => c.remotePeer.toString()))].filter(isMember);
    const auditReplicator = await startAuditReplicator({ libp2p, audit: sec.audit, isMember, members: connectedMembers, onError: (peer, err) => report(`audit ${peer}`)(err) });
    stack.push(() => auditReplicator.stop());

    // libp2p redials a keep-alive peer that drops (a few times, backing off), so members stay connected.
    const keepAlive = (peer: PeerId): void => {
      if (!isMember(peer.toString()) || blocked.has(peer.toString())) return;
      libp2p.peerStore.merge(peer, { tags: { [KEEP_ALIVE]: { value: 1 } } }).catch(report("keep-alive"));
    };
    libp2p.addEventListener("peer:connect", (evt) => keepAlive(evt.detail));
    enforce = () => {
      // A revoked or no-longer-trusted device is cut off wherever the statement reaches.
      for (const conn of libp2p.getConnections()) {
        const peer = conn.remotePeer.toString();
        if (blocked.has(peer) || (!isMember(peer) && peer !== allowed && !pairing!.hasOpenInvites() && !pairing!.isPairing(peer))) {
          sync.disconnect(peer);
          void conn.close().catch(() => undefined);
        } else {
          keepAlive(conn.remotePeer);
        }
      }
      // A connection admitted while pairing carries a member from now on.
      sync.membersChanged();
      statementSync.membersChanged();
    };

    const adapter = new ClusterTransportAdapter({
      selfId: identity.peerId,
      engine: core.engine,
      agents,
      directory,
      client,
      isMember,
      connectedMembers,
      ...(options.leaseTimeoutMs !== undefined && { leaseTimeoutMs: options.leaseTimeoutMs }),
    });

    let stopping: Promise<void> | undefined;
    return {
      peerId: identity.peerId,
      identity,
      dataDir,
      libp2p,
      core,
      membership,
      pairing,
      directory,
      sync,
      statementSet: set,
      statements: statementSync,
      quarantine,
      client,
      adapter,
      security: sec,
      auditReplicator,
      createMesh: async (name) => {
        const meshId = await membership.create(name);
        await sec.refresh();
        await sec.signDefaultPolicy();
        await sec.record({ action: "mesh.create", userId: identity.peerId, deviceId: identity.peerId, resource: meshId, result: "allowed" });
        return meshId;
      },
      multiaddrs: () => libp2p.getMultiaddrs().map((a) => a.toString()),
      dial: async (addr) => {
        await libp2p.dial(multiaddr(addr), { signal: AbortSignal.timeout(10_000) });
      },
      peers: async () => {
        const records = new Map((await directory.members().catch(() => [])).map((c) => [c.peerId, c.record]));
        const out: PeerInfo[] = [];
        for (const conn of libp2p.getConnections()) {
          const peer = conn.remotePeer.toString();
          if (out.some((p) => p.peerId === peer)) continue;
          const latencyMs = await libp2p.services.ping.ping(conn.remotePeer, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
          const record = records.get(peer);
          out.push({
            peerId: peer,
            level: membership.levelOf(peer),
            addrs: [conn.remoteAddr.toString()],
            ...(latencyMs !== undefined && { latencyMs }),
            ...(record && { agents: record.agents, capabilities: record.capabilities, load: record.load }),
          });
        }
        return out;
      },
      lastSeen: (peer) => (libp2p.getConnections().some((c) => c.remotePeer.toString() === peer) ? Date.now() : seen.get(peer)),
      block: (peer) => {
        blocked.add(peer);
        enforce();
      },
      unblock: (peer) => void blocked.delete(peer),
      publish: () => directory.publish(),
      stop: () => (stopping ??= unwind()),
    };
  } catch (err) {
    await unwind();
    throw err;
  }
}
