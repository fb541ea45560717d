import { ed25519, publicKeyOfDeviceId } from "../../identity/index.js";

/** Sets these signed bytes apart from anything else a device key signs. */
const DOMAIN = Buffer.from("coderclaw/doc-heads/1\n", "utf8");

/**
 * A document writer's signature over the heads of one of its documents. Heads
 * are hashes of Automerge changes, and every change names the hashes it depends
 * on, so one signature vouches for the whole history up to them: a receiver that
 * ends at exactly these heads holds nothing the writer did not write.
 */
export interface HeadsSignature {
  /** Device id of the writer. */
  writer: string;
  /** The heads signed, sorted. */
  heads: string[];
  /** Ed25519 signature of {@link headsSignedBytes}. */
  sig: Uint8Array;
}

/**
 * The bytes a writer signs for `heads` of document `docId`: a domain tag, the
 * id's length and bytes, then each head's 32 bytes in sorted order. Fixed-size
 * fields after a length-prefixed id make the encoding unambiguous.
 */
export function headsSignedBytes(docId: string, heads: readonly string[]): Uint8Array {
  const id = Buffer.from(docId, "utf8");
  const sorted = [...heads].sort();
  const out = Buffer.allocUnsafe(DOMAIN.length + 2 + id.length + 32 * sorted.length);
  DOMAIN.copy(out, 0);
  out.writeUInt16BE(id.length, DOMAIN.length);
  id.copy(out, DOMAIN.length + 2);
  sorted.forEach((h, i) => out.write(h, DOMAIN.length + 2 + id.length + 32 * i, 32, "hex"));
  return out;
}

/** Sign `heads` of `docId` as `signer`. */
export function signHeads(signer: { peerId: string; sign(bytes: Uint8Array): Uint8Array }, docId: string, heads: readonly string[]): HeadsSignature {
  const sorted = [...heads].sort();
  return { writer: signer.peerId, heads: sorted, sig: signer.sign(headsSignedBytes(docId, sorted)) };
}

/** True when `signature` is its writer's valid signature over its heads of `docId`. */
export function verifyHeads(docId: string, signature: HeadsSignature): boolean {
  const key = publicKeyOfDeviceId(signature.writer);
  if (key === undefined || signature.sig.byteLength !== 64) return false;
  return ed25519.verify(signature.sig, headsSignedBytes(docId, signature.heads), key);
}
