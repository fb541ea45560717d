import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  createInvite,
  createMeshGenesis,
  encodeInvite,
  InviteBook,
  InviteError,
  parseInvite,
  renderQr,
  toHex,
} from "../../identity/index.js";
import { identity } from "./helpers.js";

const inviter = identity(1);
const T0 = 1_700_000_000_000;
const meshId = createMeshGenesis(inviter, "home", T0).body.meshId;
const otherMesh = createMeshGenesis(inviter, "work", T0).body.meshId;
const options = { meshId, inviter: inviter.peerId, addrs: ["/ip4/192.168.1.20/tcp/4001", "/ip6/::1/tcp/4001"], level: "verified" as const, expiresAt: T0 + 600_000 };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cc-invite-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof InviteError) return err.code;
    throw err;
  }
  return "accepted";
}

describe("invite strings", () => {
  test("round trip through one compact string", () => {
    const invite = createInvite(options);
    const text = encodeInvite(invite);
    expect(text).toMatch(/^ccinv1\.[A-Za-z0-9_-]+$/);
    expect(text.length).toBeLessThan(300);
    expect(parseInvite(`  ${text}\n`)).toEqual({ ...invite, addrs: options.addrs });
  });

  test.each([
    ["wrong prefix", (t: string) => t.replace("ccinv1.", "ccinv2."), /must start with/],
    ["cut short", (t: string) => t.slice(0, -10), /damaged/],
    ["not base64url", (t: string) => `${t.slice(0, 20)}*${t.slice(21)}`, /base64url/],
    ["empty", () => "", /must start with/],
  ])("refuses an invite %s with a clear error", (_, damage, message) => {
    const text = encodeInvite(createInvite(options));
    expect(() => parseInvite(damage(text))).toThrow(message);
    expect(() => parseInvite(damage(text))).toThrow(InviteError);
  });

  test("renders as a terminal QR code", () => {
    const qr = renderQr(encodeInvite(createInvite(options)));
    expect(qr.split("\n").length).toBeGreaterThan(20);
    expect(qr).toMatch(/[▀▄█]/);
  });
});

describe("invite book", () => {
  const right = () => true;
  const wrong = () => false;

  test("an invite redeems once; a replay is refused", async () => {
    const book = await InviteBook.openFile(join(dir, "invites.json"));
    const invite = await book.create(options, T0);
    expect((await book.redeem(invite.id, meshId, "joiner-1", right, T0 + 1)).usedBy).toBe("joiner-1");
    expect(await codeOf(book.check(invite.id, meshId, T0 + 2))).toBe("INVITE_REPLAYED");
    expect(await codeOf(book.redeem(invite.id, meshId, "joiner-2", right, T0 + 2))).toBe("INVITE_REPLAYED");
  });

  test("state survives a restart, and the file is private", async () => {
    const path = join(dir, "invites.json");
    const book = await InviteBook.openFile(path);
    const used = await book.create(options, T0);
    const fresh = await book.create(options, T0);
    await book.redeem(used.id, meshId, "joiner", right, T0 + 1);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
    const reopened = await InviteBook.openFile(path);
    expect(await codeOf(reopened.redeem(used.id, meshId, "x", right, T0 + 2))).toBe("INVITE_REPLAYED");
    expect((await reopened.redeem(fresh.id, meshId, "y", right, T0 + 2)).secret).toEqual(fresh.secret);
    expect(JSON.parse(await readFile(path, "utf8")).refusals).toHaveLength(1);
  });

  test("distinct refusals: expired, other mesh, unknown, wrong secret", async () => {
    const book = await InviteBook.openFile(join(dir, "invites.json"));
    const invite = await book.create(options, T0);
    expect(await codeOf(book.check(invite.id, meshId, options.expiresAt))).toBe("INVITE_EXPIRED");
    expect(await codeOf(book.check(invite.id, otherMesh, T0))).toBe("INVITE_OTHER_MESH");
    expect(await codeOf(book.check(new Uint8Array(8), meshId, T0))).toBe("INVITE_UNKNOWN");
    expect(await codeOf(book.redeem(invite.id, meshId, "j", wrong, T0))).toBe("INVITE_WRONG_SECRET");
    expect(book.refusals().map((r) => r.code)).toEqual(["INVITE_EXPIRED", "INVITE_OTHER_MESH", "INVITE_UNKNOWN", "INVITE_WRONG_SECRET"]);
    expect(book.refusals()[0]!.inviteId).toBe(toHex(invite.id));
  });

  test("failure counts and locks survive a restart", async () => {
    const path = join(dir, "invites.json");
    const book = await InviteBook.openFile(path, { maxFailuresPerInvite: 2 });
    const invite = await book.create(options, T0);
    await codeOf(book.redeem(invite.id, meshId, "j", wrong, T0));
    await codeOf(book.redeem(invite.id, meshId, "j", wrong, T0));
    const reopened = await InviteBook.openFile(path, { maxFailuresPerInvite: 2 });
    expect(await codeOf(reopened.redeem(invite.id, meshId, "j", right, T0))).toBe("INVITE_RATE_LIMITED");
  });

  test("a damaged book file is an error, not an empty book", async () => {
    const path = join(dir, "invites.json");
    await (await InviteBook.openFile(path)).create(options, T0);
    await writeFile(path, "{ not json");
    await expect(InviteBook.openFile(path)).rejects.toMatchObject({ code: "KEY_CORRUPT", path });
  });

  test("an invite is burned after too many wrong secrets", async () => {
    const book = await InviteBook.openFile(join(dir, "invites.json"), { maxFailuresPerInvite: 3 });
    const invite = await book.create(options, T0);
    for (let i = 0; i < 3; i += 1) expect(await codeOf(book.redeem(invite.id, meshId, "j", wrong, T0))).toBe("INVITE_WRONG_SECRET");
    expect(await codeOf(book.redeem(invite.id, meshId, "j", right, T0))).toBe("INVITE_RATE_LIMITED");
  });

  test("many failures lock all pairing for a while", async () => {
    const book = await InviteBook.openFile(join(dir, "invites.json"), { maxGlobalFailures: 5, globalWindowMs: 1000, lockoutMs: 10_000 });
    const invite = await book.create(options, T0);
    for (let i = 0; i < 5; i += 1) expect(await codeOf(book.check(new Uint8Array(8).fill(i), meshId, T0 + i))).toBe("INVITE_UNKNOWN");
    expect(await codeOf(book.redeem(invite.id, meshId, "j", right, T0 + 10))).toBe("INVITE_RATE_LIMITED");
    expect((await book.redeem(invite.id, meshId, "j", right, T0 + 4 + 10_000)).usedBy).toBe("j");
  });

  test("failures spread out in time do not lock", async () => {
    const book = await InviteBook.openFile(join(dir, "invites.json"), { maxGlobalFailures: 3, globalWindowMs: 1000 });
    const invite = await book.create(options, T0);
    for (let i = 0; i < 6; i += 1) await codeOf(book.check(new Uint8Array(8), meshId, T0 + i * 2000));
    expect((await book.redeem(invite.id, meshId, "j", right, T0 + 12_000)).usedBy).toBe("j");
  });

  test("two concurrent redemptions of one invite: exactly one wins", async () => {
    const book = await InviteBook.openFile(join(dir, "invites.json"));
    const invite = await book.create(options, T0);
    const results = await Promise.allSettled([book.redeem(invite.id, meshId, "a", right, T0), book.redeem(invite.id, meshId, "b", right, T0)]);
    expect(results.filter((r) => r.status === "fulfilled")).toHaveLength(1);
  });
});
