import type { DeviceIdentity } from "../../identity/index.js";
import type { MeshLibp2p } from "../libp2p/create-libp2p.js";

/** An audit entry a service records about what a peer did (a refusal, a pairing). */
export interface ServiceAuditEntry {
  action: string;
  /** The peer (device id) the entry is about. */
  peer: string;
  resource?: string;
  result: "allowed" | "denied";
  reason?: string;
}

/**
 * What a running node gives each of its mesh services when it starts them: the
 * libp2p node, who this node is, who the members are, and where to report.
 * Everything else a service needs its factory takes.
 */
export interface ServiceContext {
  readonly libp2p: MeshLibp2p;
  readonly identity: DeviceIdentity;
  /** Whether `peer` is a member of this node's mesh now (and not blocked here). */
  isMember(peer: string): boolean;
  /** Members connected now, each once. */
  connectedMembers(): string[];
  /** The mesh this node belongs to, once it founded or joined one. */
  meshId(): string | undefined;
  /** A background failure (a peer's channel, a round of work): reported, never thrown. */
  report(error: Error, peer?: string): void;
  /** Record an audit entry in this node's log; failures to record are reported. */
  audit(entry: ServiceAuditEntry): void;
  /** Cut `peer` off for `ms` (a member that misbehaves): its connections close and new ones are refused. */
  block(peer: string, ms: number): void;
}

/**
 * One mesh protocol as a running node holds it (the shape of js-libp2p's
 * `Startable` and iroh's protocol handlers). `createNode` starts its services in
 * order once libp2p runs, tells them when membership changes, and stops them in
 * reverse order. A service registers its own libp2p handlers in `start` and
 * removes them in `stop`.
 */
export interface MeshService {
  /** The protocol id this service speaks (for logs, admission and docs). */
  readonly protocol: string;
  start(context: ServiceContext): Promise<void>;
  /** Release everything `start` took. Idempotent. */
  stop(): Promise<void>;
  /** Someone's membership changed (a statement arrived): close what a non-member holds, open what a new member should get. */
  membersChanged?(): void | Promise<void>;
}
