import { createPrivateKey, createPublicKey, sign as nodeSign, verify as nodeVerify, type KeyObject } from "node:crypto";
import * as noble from "@noble/ed25519";
import { sha512 } from "@noble/hashes/sha2.js";

// noble's sync API needs a SHA-512; setting it once here keeps every caller sync.
noble.hashes.sha512 = sha512;

/**
 * Ed25519 over raw keys: 32-byte seeds (secret keys), 32-byte public keys,
 * 64-byte signatures. Two implementations must agree bit for bit; the
 * differential test in test/identity holds them to it.
 */
export interface Ed25519 {
  /** Implementation name, for benchmarks and error messages. */
  readonly name: string;
  /** Public key of a 32-byte seed. */
  publicKey(seed: Uint8Array): Uint8Array;
  /** Deterministic RFC 8032 signature of `message` under `seed`. */
  sign(message: Uint8Array, seed: Uint8Array): Uint8Array;
  /** RFC 8032 verdict; malformed keys or signatures give false, never a throw. */
  verify(signature: Uint8Array, message: Uint8Array, publicKey: Uint8Array): boolean;
}

// Public keys enter node:crypto as JWK: measured here, importing a JWK is
// over ten times cheaper than importing the equivalent SPKI DER. Private keys
// (one per device, made once) use PKCS#8 DER, which needs no public half.
const PKCS8_PREFIX = Buffer.from("302e020100300506032b657004220420", "hex");

function publicJwk(publicKey: Uint8Array) {
  const x = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("base64url");
  return { key: { kty: "OKP", crv: "Ed25519", x }, format: "jwk" as const };
}

// Building a public KeyObject can cost more than the verify itself, so keep them.
// A mesh has thousands of devices, not millions: a bounded map cleared when
// full is enough and never grows without limit under hostile input.
const PUBLIC_CACHE_LIMIT = 8192;
const publicKeyObjects = new Map<string, KeyObject>();
// Callers that hold on to a key's bytes (device-id parsing does) skip building the string key.
const publicKeyObjectsByArray = new WeakMap<Uint8Array, KeyObject>();
const privateKeyObjects = new WeakMap<Uint8Array, KeyObject>();

function publicKeyObject(publicKey: Uint8Array): KeyObject {
  const byArray = publicKeyObjectsByArray.get(publicKey);
  if (byArray !== undefined) return byArray;
  const cacheKey = Buffer.from(publicKey.buffer, publicKey.byteOffset, publicKey.byteLength).toString("latin1");
  let key = publicKeyObjects.get(cacheKey);
  if (key === undefined) {
    key = createPublicKey(publicJwk(publicKey));
    if (publicKeyObjects.size >= PUBLIC_CACHE_LIMIT) publicKeyObjects.clear();
    publicKeyObjects.set(cacheKey, key);
  }
  publicKeyObjectsByArray.set(publicKey, key);
  return key;
}

function privateKeyObject(seed: Uint8Array): KeyObject {
  if (seed.byteLength !== 32) throw new RangeError("Ed25519 seed must be 32 bytes");
  let key = privateKeyObjects.get(seed);
  if (key === undefined) {
    key = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: "der", type: "pkcs8" });
    privateKeyObjects.set(seed, key);
  }
  return key;
}

/** The fast path on Node: OpenSSL through node:crypto with cached KeyObjects. */
export const nodeEd25519: Ed25519 = {
  name: "node:crypto",
  publicKey(seed) {
    const jwk = createPublicKey(privateKeyObject(seed)).export({ format: "jwk" });
    return new Uint8Array(Buffer.from(jwk.x ?? "", "base64url"));
  },
  sign(message, seed) {
    return new Uint8Array(nodeSign(null, message, privateKeyObject(seed)));
  },
  verify(signature, message, publicKey) {
    if (signature.byteLength !== 64 || publicKey.byteLength !== 32) return false;
    try {
      return nodeVerify(null, message, publicKeyObject(publicKey), signature);
    } catch {
      // OpenSSL refuses some non-point encodings at key creation: that is a "no".
      return false;
    }
  },
};

/** The portable reference (@noble/ed25519, RFC 8032 strict mode to match OpenSSL). */
export const nobleEd25519: Ed25519 = {
  name: "@noble/ed25519",
  publicKey(seed) {
    return noble.getPublicKey(seed);
  },
  sign(message, seed) {
    return noble.sign(message, seed);
  },
  verify(signature, message, publicKey) {
    if (signature.byteLength !== 64 || publicKey.byteLength !== 32) return false;
    try {
      return noble.verify(signature, message, publicKey, { zip215: false });
    } catch {
      return false;
    }
  },
};

/** The implementation identity/ uses for its own signing and verification. */
export const ed25519: Ed25519 = nodeEd25519;
