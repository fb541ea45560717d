import {
  createMeshGenesis,
  isDeviceId,
  issueRevocation,
  issueTrustCert,
  meetsTrustLevel,
  TrustStore,
  type DeviceIdentity,
  type DeviceTrust,
  type SignedStatement,
  type TrustLevel,
} from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { Database } from "../../src/storage/level-database.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";
import { StatementSet, type SetItem } from "./statement-set.js";

/** Options of {@link Membership.open}. */
export interface MembershipOptions {
  /** The mesh's signed items; this node's view is built from its statements. */
  set: StatementSet;
  identity: DeviceIdentity;
  /** Statements the trust store refuses are reported here. */
  onInvalid?: (id: string, error: Error) => void;
  /**
   * The mesh this node belongs to, as recorded locally when it founded or joined
   * one. Other meshes' geneses (a member could offer any) are ignored.
   */
  pinnedMeshId?: () => string | undefined;
}

/** A statement as an item of the set. */
export function statementItem(statement: SignedStatement): SetItem {
  return { id: statement.id, kind: "statement", bytes: statement.bytes };
}

/**
 * This node's view of its mesh: the signed statements (genesis, certificates,
 * revocations) of the grow-only set, and the trust verdicts they give, updated
 * as each statement arrives. Verdicts are a pure function of the statement set,
 * so every member that holds the same statements agrees, whatever order they
 * arrived in.
 */
export class Membership {
  private trust: TrustStore | undefined;
  private readonly unsubscribe: () => void;
  private readonly listeners = new Set<() => void>();

  private constructor(private readonly options: MembershipOptions) {
    this.unsubscribe = options.set.onAdded((items) => {
      if (!items.some((i) => i.kind === "statement")) return;
      this.reload();
      for (const listener of this.listeners) listener();
    });
  }

  /**
   * Open the set of signed statements kept in `db` and this node's view of it.
   * The two need each other: the set admits only statements of the mesh the
   * view knows, and the view is built from the set.
   */
  static async openStored(options: Omit<MembershipOptions, "set"> & { db: Database; write: (ops: WriteOp[]) => Promise<void> }): Promise<Membership> {
    let view: Membership | undefined;
    const set = await StatementSet.open({ db: options.db, write: options.write, admissible: (statement) => view?.admissible(statement) });
    view = Membership.open({ ...options, set });
    return view;
  }

  /** The mesh's signed items this view is built from. */
  get set(): StatementSet {
    return this.options.set;
  }

  /** Be told after the statements (and so possibly someone's level) changed; returns the unsubscribe function. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => void this.listeners.delete(listener);
  }

  /** Build the view from the statements this node holds. */
  static open(options: MembershipOptions): Membership {
    const m = new Membership(options);
    m.reload();
    return m;
  }

  /**
   * Whether a verified statement belongs in this node's set: one of its mesh,
   * or, before it holds the genesis, of the mesh it pinned (anything, when it
   * pinned none: what pairing hands it). A revocation names no mesh; its issuer
   * must be a device the mesh knows, so it waits for the mesh's genesis and the
   * issuer's certificate.
   */
  admissible(statement: SignedStatement): string | undefined {
    const mesh = this.trust?.meshId ?? this.options.pinnedMeshId?.();
    const meshId = (statement.body as { meshId?: unknown }).meshId;
    if (typeof meshId === "string") return mesh === undefined || meshId === mesh ? undefined : `statement of another mesh (${meshId})`;
    if (!this.trust) return mesh === undefined ? undefined : `revocation by ${statement.issuer} before this node holds its mesh's genesis`;
    const known = this.trust.level(statement.issuer) !== "untrusted" || this.trust.isRevoked(statement.issuer);
    return known ? undefined : `issuer ${statement.issuer} is not a device of this mesh`;
  }

  /** The mesh id, once this node founded or joined a mesh. */
  get meshId(): string | undefined {
    return this.trust?.meshId;
  }

  /** The mesh's name from its genesis. */
  get meshName(): string | undefined {
    return this.trust?.genesis?.body.name;
  }

  /** This device's trust level (untrusted when not in a mesh). */
  levelOf(deviceId: string): TrustLevel {
    return this.trust?.level(deviceId) ?? "untrusted";
  }

  /** Members are devices of level verified or above that are not revoked. */
  isMember(deviceId: string): boolean {
    if (!this.trust || this.trust.isRevoked(deviceId)) return false;
    return meetsTrustLevel(this.trust.level(deviceId), "verified");
  }

  isRevoked(deviceId: string): boolean {
    return this.trust?.isRevoked(deviceId) ?? false;
  }

  /** Every device the statements mention, with its verdict. */
  devices(): DeviceTrust[] {
    return this.trust?.devices() ?? [];
  }

  /** Every statement held, for handing to a newcomer. */
  statements(): SignedStatement[] {
    return this.trust?.statements() ?? [];
  }

  /** Found a mesh with this device as founder. Refused when already in one. */
  async create(name: string): Promise<string> {
    if (this.trust) throw new CoderClawError("INVALID_INPUT", `this node is already in mesh ${this.trust.meshId} (${this.meshName ?? ""})`);
    const genesis = createMeshGenesis(this.options.identity, name);
    await this.add([genesis]);
    return genesis.body.meshId;
  }

  /** Sign a certificate for `subject` at `level` (as this device). */
  async certify(subject: string, level: "verified" | "trusted"): Promise<SignedStatement> {
    const meshId = this.requireMesh();
    const own = this.levelOf(this.options.identity.peerId);
    if (!meetsTrustLevel(own, level)) throw new CoderClawError("PERMISSION_DENIED", `this device is ${own} and cannot vouch at ${level}`);
    if (this.isRevoked(subject)) throw new CoderClawError("INVALID_INPUT", `device ${subject} is revoked; revocation is permanent and a certificate would change nothing`, { field: "deviceId" });
    const current = this.levelOf(subject);
    if (current !== level && meetsTrustLevel(current, level)) {
      throw new CoderClawError("INVALID_INPUT", `device ${subject} is already ${current}; a ${level} certificate would change nothing (a device's level is its best chain)`, { field: "level" });
    }
    const cert = issueTrustCert(this.options.identity, meshId, subject, level);
    await this.add([cert]);
    return cert;
  }

  /** Revoke a device (permanent) or a certificate id. */
  async revoke(target: string, reason: string): Promise<SignedStatement> {
    this.requireMesh();
    const refusal = isDeviceId(target) ? this.trust?.deviceRevocationRefusal(this.options.identity.peerId, target) : undefined;
    if (refusal !== undefined) throw new CoderClawError("PERMISSION_DENIED", `the revocation would have no effect: ${refusal}`);
    const revocation = issueRevocation(this.options.identity, target, reason);
    await this.add([revocation]);
    return revocation;
  }

  /**
   * Add statements (from pairing or local signing) to the set; they replicate
   * from there. The view is updated before this resolves.
   */
  async add(statements: readonly SignedStatement[]): Promise<void> {
    if (statements.length === 0) return;
    const { refused } = await this.options.set.add(statements.map(statementItem));
    for (const r of refused) this.options.onInvalid?.(r.id, new Error(r.reason));
  }

  close(): void {
    this.unsubscribe();
    this.listeners.clear();
  }

  private requireMesh(): string {
    if (!this.trust) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: run `coderclaw mesh create` or `coderclaw mesh join <invite>`");
    return this.trust.meshId;
  }

  /** Offer the trust store the statements it has not seen; verdicts change at once. */
  private reload(): void {
    const decoded = this.options.set.statements().filter((s) => !this.trust?.has(s.id));
    if (!this.trust) {
      const pinned = this.options.pinnedMeshId?.();
      const genesis = decoded.find((s) => s.kind === "mesh-genesis" && (pinned === undefined || s.body.meshId === pinned));
      if (!genesis || genesis.kind !== "mesh-genesis") return;
      this.trust = new TrustStore(genesis.body.meshId);
    }
    for (const s of decoded) {
      try {
        this.trust.add(s);
      } catch (err) {
        this.options.onInvalid?.(s.id, err as Error);
      }
    }
  }
}
