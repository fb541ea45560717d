import { createHash } from "node:crypto";
import { ed25519, publicKeyOfDeviceId } from "../../identity/index.js";

/** Sets these hashes and signed bytes apart from anything else a device key signs. */
const LEAF_DOMAIN = Buffer.from("coderclaw/doc-heads/2/leaf\n", "utf8");
const NODE_DOMAIN = Buffer.from("coderclaw/doc-heads/2/node\n", "utf8");
const ROOT_DOMAIN = Buffer.from("coderclaw/doc-heads/2/root\n", "utf8");

/** Most documents signed in one batch; far above what one frame carries. */
export const MAX_BATCH = 1 << 20;

/**
 * A document writer's signature over the heads of one of its documents. Heads
 * are hashes of Automerge changes, and every change names the hashes it depends
 * on, so one signature vouches for the whole history up to them: a receiver that
 * ends at exactly these heads holds nothing the writer did not write.
 *
 * A writer signs many documents at once: the signature is over the root of a
 * Merkle tree whose leaves are (document id, heads), and each document carries
 * its leaf's position and the sibling hashes up to the root. A receiver checks
 * the Ed25519 signature of a root once, and each document of the batch with a
 * few hashes.
 */
export interface HeadsSignature {
  /** Device id of the writer. */
  writer: string;
  /** The heads signed, sorted. */
  heads: string[];
  /** Ed25519 signature of the batch's root. */
  sig: Uint8Array;
  /** The leaf's position in its batch. */
  index: number;
  /** Documents in the batch. */
  size: number;
  /** Sibling hashes from the leaf up to the root (empty for a batch of one). */
  proof: Uint8Array[];
}

/** The Merkle leaf of `heads` of `docId`: the id's length and bytes, then each head's 32 bytes in sorted order. */
export function headsLeaf(docId: string, heads: readonly string[]): Buffer {
  const id = Buffer.from(docId, "utf8");
  const sorted = [...heads].sort();
  const h = createHash("sha256").update(LEAF_DOMAIN);
  const len = Buffer.allocUnsafe(2);
  len.writeUInt16BE(id.length, 0);
  h.update(len).update(id);
  for (const head of sorted) h.update(Buffer.from(head, "hex"));
  return h.digest();
}

function parent(left: Uint8Array, right: Uint8Array): Buffer {
  return createHash("sha256").update(NODE_DOMAIN).update(left).update(right).digest();
}

function rootSignedBytes(root: Uint8Array): Buffer {
  return Buffer.concat([ROOT_DOMAIN, root]);
}

/**
 * Sign the heads of many documents as `signer` with one signature. A level
 * with an odd count carries its last hash up unchanged, so every proof is at
 * most the tree's depth.
 */
export function signHeadsBatch(
  signer: { peerId: string; sign(bytes: Uint8Array): Uint8Array },
  items: ReadonlyArray<{ id: string; heads: readonly string[] }>,
): HeadsSignature[] {
  if (items.length === 0) return [];
  const levels: Buffer[][] = [items.map((item) => headsLeaf(item.id, item.heads))];
  while (levels[levels.length - 1]!.length > 1) {
    const below = levels[levels.length - 1]!;
    const above: Buffer[] = [];
    for (let i = 0; i < below.length; i += 2) above.push(i + 1 < below.length ? parent(below[i]!, below[i + 1]!) : below[i]!);
    levels.push(above);
  }
  const sig = signer.sign(rootSignedBytes(levels[levels.length - 1]![0]!));
  return items.map((item, index) => {
    const proof: Uint8Array[] = [];
    let at = index;
    for (let level = 0; level < levels.length - 1; level++) {
      const row = levels[level]!;
      const sibling = at % 2 === 0 ? at + 1 : at - 1;
      if (sibling < row.length) proof.push(row[sibling]!);
      at = Math.floor(at / 2);
    }
    return { writer: signer.peerId, heads: [...item.heads].sort(), sig, index, size: items.length, proof };
  });
}

/** Sign the heads of one document as `signer`. */
export function signHeads(signer: { peerId: string; sign(bytes: Uint8Array): Uint8Array }, docId: string, heads: readonly string[]): HeadsSignature {
  return signHeadsBatch(signer, [{ id: docId, heads }])[0]!;
}

/**
 * The root a signature's proof leads to from its leaf, or undefined when the
 * proof does not fit a batch of its size. The size fixes the tree's shape (an
 * odd level carries its last hash up unchanged), so which levels take a
 * sibling is known; a lie about size or position leads to another root.
 */
function rootOf(docId: string, signature: HeadsSignature): Buffer | undefined {
  const { index, size, proof } = signature;
  if (!Number.isInteger(size) || !Number.isInteger(index) || size < 1 || size > MAX_BATCH || index < 0 || index >= size) return undefined;
  let hash = headsLeaf(docId, signature.heads);
  let at = index;
  let width = size;
  let used = 0;
  while (width > 1) {
    const sibling = at ^ 1;
    if (sibling < width) {
      const other = proof[used++];
      if (other === undefined || other.byteLength !== 32) return undefined;
      hash = at % 2 === 0 ? parent(hash, other) : parent(other, hash);
    }
    at = Math.floor(at / 2);
    width = Math.ceil(width / 2);
  }
  return used === proof.length ? hash : undefined;
}

/** Roots already checked, so the rest of a batch costs hashing only. Bounded; cleared when full. */
const VERIFIED_LIMIT = 16_384;
const verified = new Set<string>();

/** True when `signature` is its writer's valid signature over its heads of `docId`. */
export function verifyHeads(docId: string, signature: HeadsSignature): boolean {
  const key = publicKeyOfDeviceId(signature.writer);
  if (key === undefined || signature.sig.byteLength !== 64) return false;
  const root = rootOf(docId, signature);
  if (root === undefined) return false;
  const memo = `${signature.writer}\n${root.toString("hex")}\n${Buffer.from(signature.sig).toString("hex")}`;
  if (verified.has(memo)) return true;
  if (!ed25519.verify(signature.sig, rootSignedBytes(root), key)) return false;
  if (verified.size >= VERIFIED_LIMIT) verified.clear();
  verified.add(memo);
  return true;
}
