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
  /** Let the strangers `door` names connect (pairing while an invite is open), until the returned function is called. */
  openDoor(door: (peer: string) => boolean): () => void;
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

/** What a started service holds: at least a way to stop. */
export interface Running {
  stop(): Promise<void>;
  membersChanged?(): void | Promise<void>;
}

/** A {@link MeshService} made by {@link defineService}: what it started is {@link running} once started. */
export interface DefinedService<R extends Running> extends MeshService {
  /** What `start` made; throws before the service started. */
  readonly running: R;
}

/**
 * A mesh service from one function that starts it with the node's context and
 * returns what runs (its stop, and how it follows membership): the one
 * lifecycle every service of a node shares.
 */
export function defineService<R extends Running>(protocol: string, start: (context: ServiceContext) => Promise<R>): DefinedService<R> {
  let starting: Promise<R> | undefined;
  let running: R | undefined;
  let stopping: Promise<void> | undefined;
  return {
    protocol,
    get running(): R {
      if (running === undefined) throw new Error(`${protocol} has not started`);
      return running;
    },
    async start(context) {
      if (starting !== undefined) throw new Error(`${protocol} has already started`);
      starting = start(context);
      running = await starting;
    },
    // A stop asked for while the service is still starting waits for it, then stops what started.
    stop: () => (stopping ??= (async () => void (await (await starting?.catch(() => undefined))?.stop()))()),
    membersChanged: () => running?.membersChanged?.(),
  };
}
