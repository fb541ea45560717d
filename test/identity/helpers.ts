import { deviceIdentityFromSeed, type DeviceIdentity } from "../../identity/index.js";

/** A deterministic identity: seed bytes all equal to `n`. */
export function identity(n: number): DeviceIdentity {
  return deviceIdentityFromSeed(new Uint8Array(32).fill(n));
}

/** Deterministic identities 1..count. */
export function identities(count: number): DeviceIdentity[] {
  return Array.from({ length: count }, (_, i) => identity(i + 1));
}
