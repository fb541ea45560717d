import type { Dispatcher } from "./scheduling/dispatcher.js";
import type { RunningBlobs } from "./workspaces/blob-service.js";
import type { BlobStore } from "../src/workspace/blob-store.js";
import type { CodeUploads } from "./workspaces/code-uploads.js";
import type { CodeWorkspaces } from "./workspaces/code-workspaces.js";
import type { RecentChanges } from "./workspaces/recent-changes.js";
import type { NodeRegistry } from "./registry/node-registry.js";
import type { PublishedAgents } from "./registry/published-agents.js";
import type { DeviceIdentity } from "../identity/index.js";
import type { AgentRegistry } from "../src/agents/executor.js";
import type { SandboxMode } from "../src/agents/sandbox.js";
import type { LocalCore } from "../src/runtime/local-core.js";
import type { AuditReplicator } from "./audit/audit-replicator.js";
import type { ClusterTransportAdapter } from "./cluster-adapter.js";
import type { MeshLibp2p } from "./libp2p/create-libp2p.js";
import type { Membership } from "./mesh/membership.js";
import type { PairingService } from "./mesh/pairing-service.js";
import type { PeerInfo } from "./mesh/peer-list.js";
import type { PingReport } from "./mesh/peer-ping.js";
import type { DoctorReport } from "./mesh/doctor.js";
import type { PortMappingReport } from "./libp2p/router-port-mapping.js";
import type { StatementSet } from "./mesh/statement-set.js";
import type { StatementSync } from "./mesh/statement-sync.js";
import type { CapabilityDirectory } from "./routing/index.js";
import type { MeshService } from "./services/mesh-service.js";
import type { Quarantine, SyncEngine } from "./sync/index.js";
import type { NodeSecurity } from "./security/node-security.js";
import type { TaskClient } from "./tasks/task-client.js";
import type { AuthorizeSubmit } from "./tasks/task-server.js";
import type { NodeWorkflows } from "./workflows/node-workflows.js";
import type { NodeApprovals } from "./workflows/node-approvals.js";
import type { TaskApprovals } from "./approvals/task-approvals.js";
import type { IdentityProvider } from "../src/security/providers.js";

export type { PeerInfo } from "./mesh/peer-list.js";
export type { PingReport } from "./mesh/peer-ping.js";
export type { DoctorReport } from "./mesh/doctor.js";
export type { PortMappingEntry, PortMappingReport } from "./libp2p/router-port-mapping.js";

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
  /**
   * Serve circuit relay v2 to members, so members behind NATs reach each other
   * through this node. `"auto"`: while members can reach this node (a member's
   * dial back says so). Default false.
   */
  relay?: boolean | "auto";
  /**
   * Also listen through a relay member (`/p2p-circuit`), for members that cannot
   * dial this node directly. Default: true unless every listen address is loopback.
   */
  reserveRelay?: boolean;
  /** Replace relayed connections between members by direct ones where their NATs allow (hole punching). Default true. */
  holePunch?: boolean;
  /**
   * Ask the home router (UPnP IGD or NAT-PMP) to forward this node's TCP listen port, and
   * advertise the router's public address with the mapped port, so members
   * outside dial this node directly. Default false.
   */
  upnp?: boolean;
  /** Agents this node runs; default the built-in `echo` and `sleep`. */
  agents?: AgentRegistry;
  maxConcurrentTasks?: number;
  /** Bytes of output each task keeps and streams; past it, one marker (runtime.yaml `deployment.maxOutputBytes`). Default 1 MiB. */
  maxOutputBytes?: number;
  /** Labels this node advertises (`gpu`, `macos`): tasks that require them can be placed here. */
  labels?: string[];
  /** Resources this node advertises (`{ cpu: 8, memoryGiB: 32 }`): tasks that require at least an amount can be placed here. */
  resources?: Record<string, number>;
  defaultTimeoutMs?: number;
  /** Lease renewals to submitters, ms. Default 1,000. */
  leaseIntervalMs?: number;
  /** Executor silence after which a remote task is presumed lost, ms. Default 10,000. */
  leaseTimeoutMs?: number;
  /** Tasks that carry code: the agents that may receive it from other devices (absent: all), the largest tree sent or received, and what a submission keeps of its working tree (see RuntimeConfig `code.keepBytes`). */
  code?: { agents?: string[]; maxTreeBytes?: number; keepBytes?: number };
  /** Bytes the content-addressed store of code and results may hold before unpinned blobs are collected. Default 4 GiB. */
  blobQuotaBytes?: number;
  /** How long a task's result (patch, artifacts) stays pinned in that store after the task ends, ms. Default 7 days. */
  resultRetentionMs?: number;
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
  /** More mesh protocols this node speaks, started after the built-in ones (see node/services/mesh-service.ts). */
  services?: MeshService[];
  /** Identity providers (OIDC, GitHub Actions) whose tokens the HTTP API exchanges for sessions; the local one is always there. */
  identityProviders?: ReadonlyArray<IdentityProvider<never>>;
  /**
   * @internal Tell task outcomes before they are durable, so a crash can take
   * back a reported result: only for `bench:schedule` to measure what durable
   * completion costs, in the same run. Never set it in a node that serves anyone.
   */
  announceBeforeDurable?: boolean;
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
  /** Places the tasks submitted on this node (what waits, and where the rest runs). */
  readonly dispatcher: Dispatcher;
  /** RBAC, policies, sessions and this node's audit log. */
  readonly security: NodeSecurity;
  /** Audit log replication with members. */
  readonly auditReplicator: AuditReplicator;
  /** Tasks that carry code: snapshots sent, workspaces made, results fetched. */
  readonly workspaces: CodeWorkspaces;
  /** Code sent with tasks over the HTTP API, per caller, until it is submitted. */
  readonly uploads: CodeUploads;
  /**
   * Tasks' changes as the control socket and the HTTP API read them: each
   * result opened once for a while, so that reading one a file or a blob at a
   * time costs its manifest once.
   */
  readonly changes: RecentChanges;
  /** The content-addressed store of this node's trees: tasks' code and results, published skills. */
  readonly blobStore: BlobStore;
  /** The blob protocol (byte counters per peer, for tests and benchmarks). */
  readonly blobs: RunningBlobs;
  /** Workflows this node coordinates; those it held as running when it stopped are taken up again at start. */
  readonly workflows: NodeWorkflows;
  /** Approval requests this node owns, and decisions signed here for any member's. */
  readonly approvals: NodeApprovals;
  /** Tasks that this node's policy holds for an approver's decision, and requests of every member. */
  readonly taskApprovals: TaskApprovals;
  /** The mesh's registry of skills: publish, install, list, remove (issue 23). */
  readonly registry: NodeRegistry;
  /** Agents published to the mesh, as this node takes them in: which run here, and why not where they do not. */
  readonly publishedAgents: PublishedAgents;
  /**
   * Found a mesh with this device as founder and admin, and sign its default
   * policy (members may send each other work). Returns the mesh id.
   */
  createMesh(name: string): Promise<string>;
  /** Addresses other nodes can dial, with `/p2p/<id>`. */
  multiaddrs(): string[];
  /** Dial a peer by multiaddr (with `/p2p/<id>`). */
  dial(addr: string): Promise<void>;
  /** Connected peers with their trust level, path (direct, or relayed through whom) and latency. */
  peers(): Promise<PeerInfo[]>;
  /** Ping a peer `count` times (default 3) on the path this node uses for it; dials it first when not connected. */
  ping(peerId: string, count?: number): Promise<PingReport>;
  /** Reachability, NAT behaviour as observed, listening addresses, relays, port mapping and each member's path, with hints. */
  doctor(): Promise<DoctorReport>;
  /** Ports the home router forwards to this node (option `upnp`): by UPnP or NAT-PMP, external address, lease, state. */
  portMapping(): PortMappingReport;
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
