import { randomBytes } from "node:crypto";
import { deviceIdentityFromSeed, type DeviceIdentity } from "../../identity/device.js";
import { publicKeyOfDeviceId } from "../../identity/device-id.js";
import { ed25519 } from "../../identity/ed25519.js";

/**
 * Something that signs with an Ed25519 key: identity/'s `DeviceIdentity` fits, so
 * the security service never handles private key material itself.
 */
export interface Signer {
  /** Device id (PeerId string) of the key; ids are self-certifying, the public key is inside. */
  readonly peerId: string;
  /** Raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Ed25519 signature (64 bytes) over `bytes`. */
  sign(bytes: Uint8Array): Uint8Array;
}

/** Finds the raw Ed25519 public key of an author id; undefined when unknown. */
export type KeyResolver = (id: string) => Uint8Array | undefined;

/** The default resolver: device ids carry their public key, anything else is unknown. */
export const deviceKeyResolver: KeyResolver = publicKeyOfDeviceId;

/** True when `signature` is a valid Ed25519 signature of `message` by raw key `publicKey`. Never throws. */
export function verifySignature(publicKey: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  return ed25519.verify(signature, message, publicKey);
}

/** A device identity with a fresh random key, for tests, benches and throwaway nodes. */
export function generateSigner(): DeviceIdentity {
  return deviceIdentityFromSeed(randomBytes(32));
}
