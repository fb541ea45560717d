import { decode, encode } from "cborg";
import { isDeviceId } from "../../identity/index.js";
import { signHeadsBatch, verifyHeads, type HeadsSignature } from "./heads-signature.js";
import { sameHeads } from "../../src/storage/document-store.js";
import type { Database } from "../../src/storage/level-database.js";
import type { RootListReader, RootReader } from "../../src/storage/root-reader.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";

/**
 * Who may write the documents under one prefix: the device a document names as
 * its writer. The writer is read from the document itself, so it is fixed by
 * the writer's own signed first change and nobody else can claim it.
 */
export interface WriterRule {
  prefix: string;
  /** The device that may write `id`, as the document says; undefined when it says nothing readable. */
  writerOf(id: string, root: RootReader): string | undefined;
  /** What is wrong with a received document's content, if anything: such content is never stored. */
  problem?(root: RootReader, lists: RootListReader): string | undefined;
  /**
   * The Automerge actor every change of a writer's document must carry. Bound
   * to the writer, it stops a member from taking another's history, adding a
   * change that names itself the writer, and signing the lot as its own.
   */
  actorOf?(writer: string): string;
}

/** Why a received change was not taken. */
export interface Refusal {
  reason: string;
  /**
   * True when the sender sent something no honest node sends (a bad signature,
   * changes that do not end at the signed heads, a writer claiming a document
   * it does not own): the sender is audited and its session cut. False for what
   * an honest relay may still hold (a writer revoked since).
   */
  offence: boolean;
}

/** Options of {@link createReplicaAuthority}. */
export interface ReplicaAuthorityOptions {
  /** This device: it signs the heads of the documents it writes. */
  identity: { peerId: string; sign(bytes: Uint8Array): Uint8Array };
  /** The database the document store keeps its documents in; signatures of received documents are kept beside them. */
  db: Database;
  rules: readonly WriterRule[];
  /** Devices whose documents this node takes now (the mesh's members). */
  mayWrite(deviceId: string): boolean;
}

/**
 * The single-writer rule of replicated documents. A node accepts a change to a
 * document only when the document's writer signed the heads the change ends at;
 * it keeps that signature beside the document (in the change's own batch) so it
 * can forward it, and signs the heads of the documents it writes itself.
 */
export interface ReplicaAuthority {
  /** True when documents with this id replicate (a rule covers its prefix). */
  replicates(id: string): boolean;
  /**
   * The signatures to send with the heads of these documents: the writer's as
   * received for one this node relays, this node's own for those it writes (one
   * batch signature for all of them); undefined where it holds none for exactly
   * these heads (that document is then not sent). `root` reads a document this
   * node may write, to check that it does; `written` says this node just wrote
   * the change itself, which settles it (a document it wrote that names another
   * writer, such as one queued by an old CLI with no executor, is refused by
   * receivers without holding it against this node).
   */
  signaturesFor(items: ReadonlyArray<{ id: string; heads: readonly string[]; root: () => RootReader | undefined; written?: boolean }>): Array<HeadsSignature | undefined>;
  /**
   * Judge a received signature before anything is applied. `held` says whether
   * this node holds the document; `extendsHeld`, whether the patch builds on
   * heads this node holds (so it claims to continue this node's copy).
   */
  screen(id: string, signature: HeadsSignature, held: boolean, extendsHeld: boolean): Refusal | typeof ECHO | undefined;
  /**
   * Judge the document a received change produced: it must end at the signed
   * heads, name the signer as writer, and read as what its prefix holds.
   */
  judge(id: string, signature: HeadsSignature, heads: readonly string[], root: RootReader, lists: RootListReader, actors: () => string[]): Refusal | undefined;
  /** Writes that keep `signature` beside the document, for the batch of the change it vouches for. */
  recordOps(id: string, signature: HeadsSignature): WriteOp[];
  /** The writer's signature this node holds for a document it received, if any. */
  held(id: string): HeadsSignature | undefined;
  /**
   * Check a document read from storage as on receipt: one another device writes
   * must still carry that writer's valid signature over exactly the heads stored.
   * Why not, or undefined.
   */
  checkStored(id: string, heads: readonly string[], root: RootReader): string | undefined;
}

/**
 * What {@link ReplicaAuthority.screen} says of this node's own document signed
 * by this node: an echo from a relay that reconciled while it was writing, with
 * nothing this node lacks. Ignored, not held against anyone.
 */
export const ECHO = "echo";

/** Key of the signature kept beside a received document. */
export const SIGNATURE_PREFIX = "dsig:";

/** Own documents whose writer was checked, kept so a live push signs without re-reading the document. */
const OWN_CACHE_LIMIT = 50_000;

/** See {@link ReplicaAuthority}. */
export function createReplicaAuthority(options: ReplicaAuthorityOptions): ReplicaAuthority {
  const { identity, db, rules } = options;
  const self = identity.peerId;
  const own = new Set<string>();
  const ruleOf = (id: string): WriterRule | undefined => rules.find((r) => id.startsWith(r.prefix));

  const held = (id: string): HeadsSignature | undefined => {
    const bytes = db.getSync(SIGNATURE_PREFIX + id);
    return bytes === undefined ? undefined : decodeSignature(bytes);
  };

  return {
    replicates: (id) => ruleOf(id) !== undefined,
    held,
    checkStored(id, heads, root) {
      const rule = ruleOf(id);
      if (rule === undefined) return undefined;
      const writer = rule.writerOf(id, root);
      const signature = held(id);
      // Written here (or queued here with no executor named): nobody else's signature is due.
      if (signature === undefined) return writer === undefined || writer === self ? undefined : `held with no signature of its writer ${writer}`;
      if (!sameHeads(signature.heads, heads)) return `its heads are not those its writer ${signature.writer} signed`;
      if (writer !== signature.writer) return `it names ${writer ?? "no writer"} as its writer, but ${signature.writer} signed it`;
      return verifyHeads(id, signature) ? undefined : `its writer's signature does not verify`;
    },
    signaturesFor(items) {
      const out: Array<HeadsSignature | undefined> = [];
      const mine: Array<{ at: number; id: string; heads: readonly string[] }> = [];
      items.forEach(({ id, heads, root, written }, at) => {
        out.push(undefined);
        const relayed = held(id);
        if (relayed !== undefined) {
          if (sameHeads(relayed.heads, heads)) out[at] = relayed;
          return;
        }
        if (!own.has(id) && written !== true) {
          const rule = ruleOf(id);
          const reader = rule === undefined ? undefined : root();
          if (reader === undefined || rule!.writerOf(id, reader) !== self) return;
          if (own.size >= OWN_CACHE_LIMIT) own.clear();
          own.add(id);
        }
        mine.push({ at, id, heads });
      });
      signHeadsBatch(identity, mine).forEach((signature, i) => (out[mine[i]!.at] = signature));
      return out;
    },
    screen(id, signature, isHeld, extendsHeld) {
      if (ruleOf(id) === undefined) return { reason: `${id} is not a replicated document`, offence: true };
      if (!isDeviceId(signature.writer)) return { reason: `writer ${signature.writer.slice(0, 80)} is not a device id`, offence: true };
      if (!verifyHeads(id, signature)) return { reason: `bad signature of ${signature.writer} over the heads of ${id}`, offence: true };
      if (signature.writer === self) return ECHO;
      if (isHeld) {
        const previous = held(id);
        // A document held with no signature beside it was written here.
        if (previous === undefined) return { reason: `${id} is written by this node only`, offence: true };
        // Another member may have claimed the id first (it signs its own copy validly): an honest relay of the
        // other copy is not at fault, so this is refused and reported without cutting the sender off.
        if (previous.writer !== signature.writer) return { reason: `${id} is written by ${previous.writer}, not ${signature.writer}`, offence: extendsHeld };
      }
      if (!options.mayWrite(signature.writer)) return { reason: `writer ${signature.writer} of ${id} is not a member`, offence: false };
      return undefined;
    },
    judge(id, signature, heads, root, lists, actors) {
      if (!sameHeads(heads, signature.heads)) return { reason: `changes of ${id} do not end at the heads its writer signed`, offence: true };
      const rule = ruleOf(id);
      const writer = rule?.writerOf(id, root);
      // Naming another device is forgery; naming none is what an honest node's old, executor-less document does.
      if (writer !== signature.writer) return { reason: `${id} names ${writer ?? "no writer"} as its writer, but ${signature.writer} signed it`, offence: writer !== undefined };
      const actor = rule?.actorOf?.(signature.writer);
      if (actor !== undefined && actors().some((a) => a !== actor)) return { reason: `${id} holds changes not made by its writer ${signature.writer}`, offence: false };
      const problem = rule?.problem?.(root, lists);
      // Its writer's own document, badly made: it harms no one else once refused, and a relay is not at fault.
      if (problem !== undefined) return { reason: `${id} from ${writer} is malformed: ${problem}`, offence: false };
      return undefined;
    },
    recordOps: (id, signature) => [{ type: "put", key: SIGNATURE_PREFIX + id, value: encodeSignature(signature) }],
  };
}

function encodeSignature(s: HeadsSignature): Uint8Array {
  return encode([s.writer, s.heads, s.sig, s.index, s.size, s.proof]);
}

/** A stored signature; undefined when its bytes are not one (a damaged record vouches for nothing). */
function decodeSignature(bytes: Uint8Array): HeadsSignature | undefined {
  try {
    const value: unknown = decode(bytes);
    if (!Array.isArray(value) || value.length !== 6) return undefined;
    const [writer, heads, sig, index, size, proof] = value as unknown[];
    if (typeof writer !== "string" || !Array.isArray(heads) || !heads.every((h) => typeof h === "string") || !(sig instanceof Uint8Array)) return undefined;
    if (typeof index !== "number" || typeof size !== "number" || !Array.isArray(proof) || !proof.every((p) => p instanceof Uint8Array)) return undefined;
    return { writer, heads, sig, index, size, proof };
  } catch {
    return undefined;
  }
}
