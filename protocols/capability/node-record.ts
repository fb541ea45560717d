import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromString } from "@libp2p/peer-id";
import { CID } from "multiformats/cid";
import { sha256 } from "multiformats/hashes/sha2";
import { z } from "zod";
import { MAX_REQUIREMENTS, RequirementNameSchema } from "../../src/contract/submit-options.js";
import { bytesSchema, createMessageCodec, decodeStrict, encodeCanonical } from "../framing/codec.js";
import { MalformedFrameError } from "../framing/errors.js";

/** Most entries in each list of a node record; keeps records small enough for the DHT. */
const MAX_LIST = 256;
const name = z.string().min(1).max(200);

/** What a node offers and how busy it is, published under {@link nodeRecordKey}. */
export const nodeRecordSchema = z.object({
  peerId: z.string().min(1).max(128),
  agents: z.array(name).max(MAX_LIST),
  skills: z.array(name).max(MAX_LIST),
  capabilities: z.array(name).max(MAX_LIST),
  /** Tasks running now. */
  load: z.number().int().min(0),
  maxConcurrency: z.number().int().min(1),
  /** Labels the node's configuration gives it (`gpu`); absent in records of older nodes. */
  labels: z.array(RequirementNameSchema).max(MAX_REQUIREMENTS).optional(),
  /** Resources the node's configuration declares (`cpu: 8`); absent in records of older nodes. */
  resources: z
    .record(RequirementNameSchema, z.number().min(0))
    .refine((r) => Object.keys(r).length <= MAX_REQUIREMENTS)
    .optional(),
  /**
   * Agents published to the mesh that this node does not run, each with why (a label, skill or program it lacks);
   * absent when none, and in records of older nodes.
   */
  unavailable: z
    .record(name, z.string().max(500))
    .refine((r) => Object.keys(r).length <= MAX_LIST)
    .optional(),
  /** Software version of the publishing node. */
  version: z.string().max(64),
  /** Increases with every publication; the highest wins. */
  seq: z.number().int().min(0),
  /** Milliseconds since the epoch at publication; breaks seq ties. */
  updatedAt: z.number().int().min(0),
});

/** See {@link nodeRecordSchema}. */
export type NodeRecord = z.infer<typeof nodeRecordSchema>;

/** A node record with the bytes that were signed and the signature. */
export interface SignedNodeRecord {
  record: NodeRecord;
  /** Wire form, as stored in the DHT and sent over the caps protocol. */
  bytes: Uint8Array;
}

/** Domain separation: a node-record signature can never be replayed as another kind of statement. */
const SIGNING_DOMAIN = new TextEncoder().encode("coderclaw/node-record/v1\n");

const envelopeCodec = createMessageCodec({
  version: 1,
  schema: z.object({ record: bytesSchema, sig: bytesSchema }),
  maxMessageBytes: 64 * 1024,
});

/** The DHT key of a peer's node record, as text. */
export function nodeRecordKeyString(peerId: string): string {
  return `/coderclaw/node/${peerId}`;
}

/** The DHT key of a peer's node record. */
export function nodeRecordKey(peerId: string): Uint8Array {
  return new TextEncoder().encode(nodeRecordKeyString(peerId));
}

/** Kinds of things a node advertises with provider records. */
export type CapabilityKind = "agent" | "skill" | "cap";

/** The content id providers of `coderclaw:<kind>:<id>` announce: CIDv1, raw codec, sha-256. */
export async function capabilityCid(kind: CapabilityKind, id: string): Promise<CID> {
  const digest = await sha256.digest(new TextEncoder().encode(`coderclaw:${kind}:${id}`));
  return CID.createV1(0x55, digest);
}

function signingBytes(recordBytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(SIGNING_DOMAIN.byteLength + recordBytes.byteLength);
  out.set(SIGNING_DOMAIN);
  out.set(recordBytes, SIGNING_DOMAIN.byteLength);
  return out;
}

/** Signs `record` with the key of the peer it describes. */
export async function signNodeRecord(record: NodeRecord, privateKey: PrivateKey): Promise<SignedNodeRecord> {
  const parsed = nodeRecordSchema.parse(record);
  const recordBytes = encodeCanonical(parsed);
  const sig = await privateKey.sign(signingBytes(recordBytes));
  return { record: parsed, bytes: envelopeCodec.encode({ record: recordBytes, sig }) };
}

/**
 * Decodes and verifies a signed node record: strict CBOR, schema, and a
 * signature by the key inside `record.peerId`. Throws {@link MalformedFrameError}
 * on anything else.
 */
export async function openNodeRecord(bytes: Uint8Array): Promise<SignedNodeRecord> {
  const envelope = envelopeCodec.decode(bytes);
  const parsed = nodeRecordSchema.safeParse(decodeStrict(envelope.record));
  if (!parsed.success) throw new MalformedFrameError(`invalid node record: ${parsed.error.issues[0]?.message ?? "rejected"}`);
  const record = parsed.data;
  let publicKey;
  try {
    publicKey = peerIdFromString(record.peerId).publicKey;
  } catch (err) {
    throw new MalformedFrameError(`node record names an invalid peer id ${record.peerId}`, { cause: err });
  }
  if (publicKey === undefined) throw new MalformedFrameError(`peer id ${record.peerId} does not embed its public key`);
  if (!(await publicKey.verify(signingBytes(envelope.record), envelope.sig))) {
    throw new MalformedFrameError(`node record of ${record.peerId} has an invalid signature`);
  }
  return { record, bytes };
}

/** kad-dht validator of `/coderclaw/node/<peerId>`: the record must be signed by that peer. */
export async function validateNodeRecord(key: Uint8Array, value: Uint8Array): Promise<void> {
  const keyText = new TextDecoder().decode(key);
  const { record } = await openNodeRecord(value);
  if (keyText !== nodeRecordKeyString(record.peerId)) {
    throw new MalformedFrameError(`node record of ${record.peerId} stored under foreign key ${keyText}`);
  }
}

/** kad-dht selector: the highest `seq`, then the latest `updatedAt`; undecodable records lose. */
export function selectNodeRecord(_key: Uint8Array, records: Uint8Array[]): number {
  let best = 0;
  let bestRank: [number, number] = [-1, -1];
  records.forEach((bytes, i) => {
    let rank: [number, number];
    try {
      const envelope = envelopeCodec.decode(bytes);
      const record = nodeRecordSchema.parse(decodeStrict(envelope.record));
      rank = [record.seq, record.updatedAt];
    } catch {
      return;
    }
    if (rank[0] > bestRank[0] || (rank[0] === bestRank[0] && rank[1] > bestRank[1])) {
      best = i;
      bestRank = rank;
    }
  });
  return best;
}
