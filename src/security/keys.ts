import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";

/**
 * Something that signs with an Ed25519 key. identity/ device and user keys satisfy
 * this shape, so the security service never needs the private key material itself.
 */
export interface Signer {
  /** Stable id of the key holder (device id or user id), as named in statements and audit entries. */
  readonly id: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) over `message`. */
  sign(message: Uint8Array): Uint8Array;
}

/** Finds the raw Ed25519 public key for a device or user id; undefined when unknown. */
export type KeyResolver = (id: string) => Uint8Array | undefined;

// SPKI/PKCS8 DER prefixes for Ed25519 (RFC 8410): node:crypto imports raw keys only through DER or JWK.
const SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

// Importing a public key costs more than verifying with it, and a mesh verifies the same few keys constantly.
const publicKeyCache = new Map<string, KeyObject>();
const PUBLIC_KEY_CACHE_LIMIT = 4096;

function publicKeyObject(raw: Uint8Array): KeyObject {
  const cacheKey = Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString("base64");
  let key = publicKeyCache.get(cacheKey);
  if (key === undefined) {
    key = createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: "der", type: "spki" });
    if (publicKeyCache.size >= PUBLIC_KEY_CACHE_LIMIT) publicKeyCache.clear();
    publicKeyCache.set(cacheKey, key);
  }
  return key;
}

/** True when `signature` is a valid Ed25519 signature of `message` by raw key `publicKey`. Never throws. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  try {
    return verify(null, message, publicKeyObject(publicKey), signature);
  } catch {
    return false;
  }
}

/** A signer backed by node:crypto, from a raw 32-byte Ed25519 seed. */
export function ed25519Signer(id: string, seed: Uint8Array): Signer {
  if (seed.length !== 32) throw new RangeError("Ed25519 seed must be 32 bytes");
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
  const spki = createPublicKey(privateKey).export({ format: "der", type: "spki" });
  const publicKey = new Uint8Array(spki.subarray(SPKI_PREFIX.length));
  return {
    id,
    publicKey,
    sign: (message) => new Uint8Array(sign(null, message, privateKey)),
  };
}

/** A signer with a fresh random key; for tests, benches and ephemeral session keys. */
export function generateSigner(id: string): Signer {
  const { privateKey } = generateKeyPairSync("ed25519");
  const pkcs8 = privateKey.export({ format: "der", type: "pkcs8" });
  return ed25519Signer(id, new Uint8Array(pkcs8.subarray(PKCS8_PREFIX.length)));
}

/** A resolver over a fixed set of signers or raw keys. */
export function staticKeyResolver(keys: Iterable<Signer | { id: string; publicKey: Uint8Array }>): KeyResolver {
  const map = new Map<string, Uint8Array>();
  for (const k of keys) map.set(k.id, k.publicKey);
  return (id) => map.get(id);
}
