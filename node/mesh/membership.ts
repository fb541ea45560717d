import * as A from "@automerge/automerge";
import { mergedMapEntries } from "../../src/storage/merged-map.js";
import {
  createMeshGenesis,
  decodeStatement,
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
import type { DocumentStore } from "../../src/storage/document-store.js";

/** Document holding the mesh's signed statements: a grow-only map from statement id to its bytes. */
export const MESH_STATEMENTS_DOC = "mesh/statements";

type StatementsDoc = {
  s: Record<string, Uint8Array>;
};

/** Every statement the document holds (see {@link mergedMapEntries}: two nodes may each have created it). */
function statementsOf(doc: A.Doc<StatementsDoc>): Map<string, Uint8Array> {
  const out = new Map<string, Uint8Array>();
  for (const [id, bytes] of mergedMapEntries(doc, "s")) if (bytes instanceof Uint8Array) out.set(id, bytes);
  return out;
}

/** Options of {@link Membership.open}. */
export interface MembershipOptions {
  store: DocumentStore;
  identity: DeviceIdentity;
  /** Called after the set of statements (and so possibly someone's level) changed. */
  onChange?: () => void;
  /** Statements that fail to decode or verify are skipped and reported here. */
  onInvalid?: (id: string, error: Error) => void;
  /**
   * The mesh this node belongs to, as recorded locally when it founded or joined
   * one. Other meshes' geneses in the document (a member could add any) are ignored.
   */
  pinnedMeshId?: () => string | undefined;
}

/**
 * This node's view of its mesh: the signed statements (genesis, certificates,
 * revocations) replicated as one grow-only document, and the trust verdicts they
 * give. Verdicts are a pure function of the statement set, so every member that
 * holds the same statements agrees, whatever order they arrived in.
 */
export class Membership {
  private trust: TrustStore | undefined;
  private readonly unsubscribe: () => void;

  private constructor(private readonly options: MembershipOptions) {
    this.unsubscribe = options.store.onChange((change) => {
      if (change.id === MESH_STATEMENTS_DOC && change.origin === "remote") void this.reload().then(() => options.onChange?.());
    });
  }

  /** Load the statements this node holds. */
  static async open(options: MembershipOptions): Promise<Membership> {
    const m = new Membership(options);
    await m.reload();
    return m;
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
    const cert = issueTrustCert(this.options.identity, meshId, subject, level);
    await this.add([cert]);
    return cert;
  }

  /** Revoke a device (permanent) or a certificate id. */
  async revoke(target: string, reason: string): Promise<SignedStatement> {
    this.requireMesh();
    const revocation = issueRevocation(this.options.identity, target, reason);
    await this.add([revocation]);
    return revocation;
  }

  /**
   * Add statements (from pairing or local signing) to the replicated document.
   * Only statements of this node's mesh (or, before joining, a genesis with
   * them) are kept.
   */
  async add(statements: readonly SignedStatement[]): Promise<void> {
    if (statements.length === 0) return;
    await this.options.store.update<StatementsDoc>(
      MESH_STATEMENTS_DOC,
      (doc) => {
        const base = doc ?? A.from<StatementsDoc>({ s: {} });
        const held = statementsOf(base);
        const fresh = statements.filter((st) => !held.has(st.id));
        if (fresh.length === 0) return doc ?? base;
        return A.change(base, (d) => {
          for (const st of fresh) d.s[st.id] = st.bytes;
        });
      },
      "local",
    );
    await this.reload();
    this.options.onChange?.();
  }

  close(): void {
    this.unsubscribe();
  }

  private requireMesh(): string {
    if (!this.trust) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: run `coderclaw mesh create` or `coderclaw mesh join <invite>`");
    return this.trust.meshId;
  }

  private async reload(): Promise<void> {
    const doc = await this.options.store.get<StatementsDoc>(MESH_STATEMENTS_DOC);
    if (!doc) return;
    const decoded: SignedStatement[] = [];
    for (const [id, bytes] of statementsOf(doc)) {
      if (this.trust?.has(id)) continue;
      try {
        decoded.push(decodeStatement(new Uint8Array(bytes)));
      } catch (err) {
        this.options.onInvalid?.(id, err as Error);
      }
    }
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
