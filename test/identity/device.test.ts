import { chmod, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { publicKeyFromRaw } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey, peerIdFromPublicKey } from "@libp2p/peer-id";
import fc from "fast-check";
import { deviceIdOfPublicKey, deviceKeyPath, ed25519, isDeviceId, KeyFileError, loadOrCreateDeviceIdentity, publicKeyOfDeviceId, toHex } from "../../identity/index.js";

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cc-identity-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function refusal(): Promise<KeyFileError> {
  try {
    await loadOrCreateDeviceIdentity(dir);
  } catch (err) {
    if (err instanceof KeyFileError) return err;
    throw err;
  }
  throw new Error("key file was accepted");
}

describe("device identity", () => {
  test("first run creates a private key file; later runs load the same identity", async () => {
    const first = await loadOrCreateDeviceIdentity(dir);
    const path = deviceKeyPath(dir);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    expect((await stat(join(dir, "identity"))).mode & 0o777).toBe(0o700);
    const again = await loadOrCreateDeviceIdentity(dir);
    expect(again.peerId).toBe(first.peerId);
    expect(again.fingerprint).toBe(first.fingerprint);
    expect(first.fingerprint).toMatch(/^[a-z2-7]{4}(-[a-z2-7]{4}){3}$/);
  });

  test("a public key's device id is libp2p's PeerId of it, and the key is read back from the id", () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 32, maxLength: 32 }), (key) => {
        const id = deviceIdOfPublicKey(key);
        expect(id).toBe(peerIdFromPublicKey(publicKeyFromRaw(key)).toString());
        expect(toHex(publicKeyOfDeviceId(id)!)).toBe(toHex(key));
      }),
      { numRuns: 500 },
    );
    // The extremes of the key bytes, where a hand-written base58 carry goes wrong first.
    for (const key of [new Uint8Array(32), Uint8Array.from({ length: 32 }, (_, i) => (i < 31 ? 0 : 1)), new Uint8Array(32).fill(255)]) {
      expect(deviceIdOfPublicKey(key)).toBe(peerIdFromPublicKey(publicKeyFromRaw(key)).toString());
    }
    expect(() => deviceIdOfPublicKey(new Uint8Array(31))).toThrow(/32 bytes/);
  });

  test("the key is the libp2p key and the device id is its PeerId", async () => {
    const id = await loadOrCreateDeviceIdentity(dir);
    expect(peerIdFromPrivateKey(id.privateKey).toString()).toBe(id.peerId);
    expect(id.peerId).toMatch(/^12D3KooW/);
    expect(toHex(publicKeyOfDeviceId(id.peerId)!)).toBe(toHex(id.publicKey));
    expect(deviceIdOfPublicKey(id.publicKey)).toBe(id.peerId);
    expect(isDeviceId(id.peerId.replace("12D3KooW", "12D3KooX"))).toBe(false);
    expect(isDeviceId(`${id.peerId}1`)).toBe(false);
    expect(isDeviceId("QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N")).toBe(false);
    const msg = new TextEncoder().encode("hello");
    const sig = id.sign(msg);
    expect(ed25519.verify(sig, msg, id.publicKey)).toBe(true);
    expect(await id.privateKey.publicKey.verify(msg, sig)).toBe(true);
  });

  test("concurrent first runs agree on one key", async () => {
    const ids = await Promise.all([loadOrCreateDeviceIdentity(dir), loadOrCreateDeviceIdentity(dir), loadOrCreateDeviceIdentity(dir)]);
    expect(new Set(ids.map((i) => i.peerId)).size).toBe(1);
  });

  test.each([0o644, 0o640, 0o604, 0o660])("a key file with mode %o stops start-up", async (mode) => {
    await loadOrCreateDeviceIdentity(dir);
    await chmod(deviceKeyPath(dir), mode);
    const err = await refusal();
    expect(err.code).toBe("KEY_PERMISSIONS");
    expect(err.path).toBe(deviceKeyPath(dir));
    expect(err.message).toContain(deviceKeyPath(dir));
  });

  test.each([
    ["truncated", (text: string) => text.slice(0, text.length / 2)],
    ["empty", () => ""],
    ["wrong format", () => JSON.stringify({ v: 2, type: "Ed25519", key: "" })],
    ["short key", (text: string) => text.replace(/"key":"(.{10})[^"]*"/, '"key":"$1"')],
    ["public half altered", (text: string) => text.replace(/(.)"}/, (_, c: string) => `${c === "A" ? "B" : "A"}"}`)],
  ])("a %s key file is refused, never replaced", async (_, damage) => {
    await loadOrCreateDeviceIdentity(dir);
    const path = deviceKeyPath(dir);
    const original = await readFile(path, "utf8");
    await writeFile(path, damage(original), { mode: 0o600 });
    const err = await refusal();
    expect(err.code).toBe("KEY_CORRUPT");
    expect(err.message).toContain(path);
    expect(await readFile(path, "utf8")).toBe(damage(original));
  });
});
