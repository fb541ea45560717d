import { createHash } from "node:crypto";
import { toBase32 } from "./bytes.js";

/**
 * Device ids are libp2p PeerId strings of Ed25519 keys ("12D3KooW..."): the
 * public key is inside the id, so a signature can be checked from the id alone.
 */
export const DEVICE_ID_PATTERN = /^12D3KooW[1-9A-HJ-NP-Za-km-z]{44}$/;

const BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";
const BASE58_VALUE = new Map([...BASE58].map((c, i) => [c, i]));
// Identity multihash (0x00, 36 bytes) of the libp2p protobuf PublicKey {Type: Ed25519, Data: 32 bytes}.
const ED25519_PEER_ID_PREFIX = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
const DEVICE_ID_BYTES = ED25519_PEER_ID_PREFIX.length + 32;

function base58Decode(text: string): Uint8Array | undefined {
  const bytes: number[] = [];
  for (const char of text) {
    let carry = BASE58_VALUE.get(char);
    if (carry === undefined) return undefined;
    for (let i = 0; i < bytes.length; i += 1) {
      carry += bytes[i]! * 58;
      bytes[i] = carry & 0xff;
      carry >>= 8;
    }
    for (; carry > 0; carry >>= 8) bytes.push(carry & 0xff);
  }
  for (let i = 0; i < text.length && text[i] === "1"; i += 1) bytes.push(0);
  return Uint8Array.from(bytes.reverse());
}

function base58Encode(bytes: Uint8Array): string {
  const digits: number[] = [];
  for (const byte of bytes) {
    let carry = byte;
    for (let i = 0; i < digits.length; i += 1) {
      carry += digits[i]! << 8;
      digits[i] = carry % 58;
      carry = Math.floor(carry / 58);
    }
    for (; carry > 0; carry = Math.floor(carry / 58)) digits.push(carry % 58);
  }
  let text = "";
  for (let i = 0; i < bytes.length && bytes[i] === 0; i += 1) text += "1";
  for (let i = digits.length - 1; i >= 0; i -= 1) text += BASE58[digits[i]!];
  return text;
}

// Ids repeat on every statement; libp2p's parser costs about as much as a
// signature check, so ids are decoded here and remembered (bounded, since
// hostile input can name any number of them).
const CACHE_LIMIT = 8192;
const publicKeys = new Map<string, Uint8Array | null>();

/** The raw 32-byte Ed25519 public key inside a device id, or undefined when it is not one. */
export function publicKeyOfDeviceId(deviceId: string): Uint8Array | undefined {
  let key = publicKeys.get(deviceId);
  if (key === undefined) {
    key = null;
    if (DEVICE_ID_PATTERN.test(deviceId)) {
      const bytes = base58Decode(deviceId);
      // A fixed length and prefix also make the spelling canonical: one key, one id.
      if (bytes?.length === DEVICE_ID_BYTES && ED25519_PEER_ID_PREFIX.every((b, i) => bytes[i] === b)) key = bytes.subarray(ED25519_PEER_ID_PREFIX.length);
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

/**
 * The device id (PeerId string) of a raw 32-byte Ed25519 public key. Encoded
 * here rather than by libp2p, so that a command line that only checks or
 * names ids does not load libp2p's key and multiformat modules.
 */
export function deviceIdOfPublicKey(publicKey: Uint8Array): string {
  if (publicKey.length !== 32) throw new RangeError(`an Ed25519 public key is 32 bytes, not ${publicKey.length}`);
  return base58Encode(Uint8Array.from([...ED25519_PEER_ID_PREFIX, ...publicKey]));
}

/**
 * A short human-comparable fingerprint of a public key: 80 bits of its
 * SHA-256 as four dash-separated groups of base32 (e.g. "k3xq-7mfa-...").
 */
export function fingerprintOfPublicKey(publicKey: Uint8Array): string {
  const digest = createHash("sha256").update("coderclaw-fingerprint-v1\0").update(publicKey).digest();
  return (toBase32(digest.subarray(0, 10)).match(/.{4}/g) ?? []).join("-");
}
