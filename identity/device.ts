import { randomBytes } from "node:crypto";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { privateKeyFromRaw } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { writeFileAtomic } from "./atomic-file.js";
import { bytesEqual, fromBase64Url, toBase64Url } from "./bytes.js";
import { fingerprintOfPublicKey } from "./device-id.js";
import { ed25519 } from "./ed25519.js";
import { KeyFileError } from "./errors.js";

/** The libp2p private key type (as returned by @libp2p/crypto). */
export type Libp2pPrivateKey = ReturnType<typeof privateKeyFromRaw>;

/** A device's long-lived identity: one Ed25519 key, also its libp2p key. */
export interface DeviceIdentity {
  /** The libp2p private key (hand it to libp2p as `privateKey`). */
  readonly privateKey: Libp2pPrivateKey;
  /** The device id: the libp2p PeerId string. */
  readonly peerId: string;
  /** The raw 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** Short human fingerprint of the public key, for comparing out of band. */
  readonly fingerprint: string;
  /** Ed25519 signature of `bytes` (64 bytes). */
  sign(bytes: Uint8Array): Uint8Array;
}

/** Path of the device key file inside a data directory. */
export function deviceKeyPath(dataDir: string): string {
  return join(dataDir, "identity", "device.key");
}

// The file is JSON so an operator can tell what it is; the key holds seed and
// public key (libp2p's 64-byte raw form) so a damaged file is detected, not used.
interface KeyFile {
  v: 1;
  type: "Ed25519";
  key: string;
}

/** An identity from a 32-byte Ed25519 seed (tests and tools; devices use {@link loadOrCreateDeviceIdentity}). */
export function deviceIdentityFromSeed(seed: Uint8Array): DeviceIdentity {
  if (seed.byteLength !== 32) throw new RangeError("Ed25519 seed must be 32 bytes");
  const secret = new Uint8Array(seed);
  const publicKey = ed25519.publicKey(secret);
  const privateKey = privateKeyFromRaw(new Uint8Array([...secret, ...publicKey]));
  return {
    privateKey,
    peerId: peerIdFromPrivateKey(privateKey).toString(),
    publicKey,
    fingerprint: fingerprintOfPublicKey(publicKey),
    sign: (bytes) => ed25519.sign(bytes, secret),
  };
}

function parseKeyFile(path: string, text: string): DeviceIdentity {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new KeyFileError("KEY_CORRUPT", path, "device key file is not valid JSON (truncated or damaged?)", err);
  }
  const file = parsed as Partial<KeyFile> | null;
  if (typeof file !== "object" || file === null || file.v !== 1 || file.type !== "Ed25519" || typeof file.key !== "string") {
    throw new KeyFileError("KEY_CORRUPT", path, "device key file has an unknown format");
  }
  const raw = fromBase64Url(file.key);
  if (raw === undefined || raw.byteLength !== 64) {
    throw new KeyFileError("KEY_CORRUPT", path, "device key is not 64 bytes of base64url");
  }
  const identity = deviceIdentityFromSeed(raw.subarray(0, 32));
  if (!bytesEqual(identity.publicKey, raw.subarray(32))) {
    throw new KeyFileError("KEY_CORRUPT", path, "device key's public half does not match its seed");
  }
  return identity;
}

async function readKeyFile(path: string): Promise<DeviceIdentity | undefined> {
  let info;
  try {
    info = await stat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new KeyFileError("KEY_IO", path, "cannot read device key file", err);
  }
  if (!info.isFile()) throw new KeyFileError("KEY_CORRUPT", path, "device key path is not a regular file");
  // POSIX modes mean nothing on Windows; there the directory ACL is the guard.
  if (process.platform !== "win32" && (info.mode & 0o077) !== 0) {
    throw new KeyFileError(
      "KEY_PERMISSIONS",
      path,
      `device key file is accessible by group or others (mode ${(info.mode & 0o777).toString(8)}); run chmod 600 on it`,
    );
  }
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    throw new KeyFileError("KEY_IO", path, "cannot read device key file", err);
  }
  return parseKeyFile(path, text);
}

/**
 * Loads the device identity from `<dataDir>/identity/device.key`, creating it
 * on first run (mode 0600 in a 0700 directory, written atomically). A key
 * file open to group or others, or damaged, throws a {@link KeyFileError}
 * naming the path: a device never silently becomes someone else.
 */
export async function loadOrCreateDeviceIdentity(dataDir: string): Promise<DeviceIdentity> {
  const path = deviceKeyPath(dataDir);
  const existing = await readKeyFile(path);
  if (existing !== undefined) return existing;
  const seed = new Uint8Array(randomBytes(32));
  const identity = deviceIdentityFromSeed(seed);
  const file: KeyFile = { v: 1, type: "Ed25519", key: toBase64Url(new Uint8Array([...seed, ...identity.publicKey])) };
  try {
    await writeFileAtomic(path, `${JSON.stringify(file)}\n`, { mode: 0o600, exclusive: true });
  } catch (err) {
    // Another process created the key first: its key wins, everyone uses it.
    if ((err as NodeJS.ErrnoException).code === "EEXIST") {
      const winner = await readKeyFile(path);
      if (winner !== undefined) return winner;
    }
    throw new KeyFileError("KEY_IO", path, "cannot write device key file", err);
  }
  return identity;
}
