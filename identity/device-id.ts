import { createHash } from "node:crypto";
import { publicKeyFromRaw } from "@libp2p/crypto/keys";
import { peerIdFromPublicKey, peerIdFromString } from "@libp2p/peer-id";
import { toBase32 } from "./bytes.js";

/**
 * Device ids are libp2p PeerId strings of Ed25519 keys ("12D3KooW..."): the
 * public key is inside the id, so a signature can be checked from the id alone.
 */
export const DEVICE_ID_PATTERN = /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/;

// Parsing a PeerId (base58 + multihash) costs more than a verify; ids repeat, so keep them.
const CACHE_LIMIT = 8192;
const publicKeys = new Map<string, Uint8Array | null>();

/** The raw 32-byte Ed25519 public key inside a device id, or undefined when it is not one. */
export function publicKeyOfDeviceId(deviceId: string): Uint8Array | undefined {
  let key = publicKeys.get(deviceId);
  if (key === undefined) {
    key = null;
    if (DEVICE_ID_PATTERN.test(deviceId)) {
      try {
        const peerId = peerIdFromString(deviceId);
        if (peerId.type === "Ed25519") key = peerId.publicKey.raw;
      } catch {
        key = null;
      }
    }
    if (publicKeys.size >= CACHE_LIMIT) publicKeys.clear();
    publicKeys.set(deviceId, key);
  }
  return key ?? undefined;
}

/** True when `value` is a well-formed Ed25519 device id. */
export function isDeviceId(value: string): boolean {
  return publicKeyOfDeviceId(value) !== undefined;
}

/** The device id (PeerId string) of a raw 32-byte Ed25519 public key. */
export function deviceIdOfPublicKey(publicKey: Uint8Array): string {
  return peerIdFromPublicKey(publicKeyFromRaw(publicKey)).toString();
}

/**
 * A short human-comparable fingerprint of a public key: 80 bits of its
 * SHA-256 as four dash-separated groups of base32 (e.g. "k3xq-7mfa-...").
 */
export function fingerprintOfPublicKey(publicKey: Uint8Array): string {
  const digest = createHash("sha256").update("coderclaw-fingerprint-v1\0").update(publicKey).digest();
  return (toBase32(digest.subarray(0, 10)).match(/.{4}/g) ?? []).join("-");
}
