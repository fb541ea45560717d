import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import {
  createMeshGenesis,
  decodeStatement,
  deviceIdentityFromSeed,
  InviteBook,
  InviteError,
  issueTrustCert,
  toBase64Url,
  TrustStore,
  type DeviceIdentity,
  type Invite,
} from "../../../identity/index.js";
import { memoryChannelPair } from "../../../protocols/framing/index.js";
import {
  handlePairingRequest,
  PairingError,
  receiveWithin,
  runPairingJoiner,
  type InviterContext,
  type PairingChannel,
} from "../../../protocols/pairing/index.js";

/** `end` with what it sends and receives passed through `out` and `in`. */
function through(end: PairingChannel, out: (msg: unknown) => unknown, into: (msg: unknown) => unknown = (m) => m): PairingChannel {
  return {
    peer: end.peer,
    get closed() {
      return end.closed;
    },
    get failure() {
      return end.failure;
    },
    send: (msg) => end.send(out(msg)),
    close: () => end.close(),
    abort: (error) => end.abort(error),
    async *[Symbol.asyncIterator]() {
      for await (const msg of end) yield into(msg);
    },
  };
}

const seeded = (n: number) => deviceIdentityFromSeed(new Uint8Array(32).fill(n));
const founder = seeded(1);
const laptop = seeded(2);
const stranger = seeded(3);
const T0 = 1_700_000_000_000;
const genesis = createMeshGenesis(founder, "home", T0);
const meshId = genesis.body.meshId;
const otherGenesis = createMeshGenesis(founder, "work", T0);

let dir: string;
let book: InviteBook;
let store: TrustStore;
let clock: number;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "cc-pairing-"));
  book = await InviteBook.openFile(join(dir, "invites.json"), { maxFailuresPerInvite: 3 });
  store = new TrustStore(meshId);
  store.add(genesis);
  clock = T0 + 1000;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function context(extra: Partial<InviterContext> = {}): InviterContext {
  return { identity: founder, inviteBook: book, statements: () => store.statements(), now: () => clock, timeoutMs: 2000, ...extra };
}

async function newInvite(level: "verified" | "trusted" = "verified"): Promise<Invite> {
  return book.create({ meshId, inviter: founder.peerId, addrs: ["/ip4/127.0.0.1/tcp/4001"], level, expiresAt: T0 + 600_000 }, T0);
}

async function pair(invite: Invite, joiner: DeviceIdentity = laptop, ctx: InviterContext = context()) {
  const [joinerEnd, inviterEnd] = memoryChannelPair<unknown>();
  const [joined, handled] = await Promise.allSettled([
    runPairingJoiner(joinerEnd, invite, joiner, { timeoutMs: 2000, now: () => clock }),
    handlePairingRequest(inviterEnd, ctx),
  ]);
  return { joined, handled };
}

function codeOf(result: PromiseSettledResult<unknown>): string {
  if (result.status === "fulfilled") return "accepted";
  const err: unknown = result.reason;
  if (err instanceof InviteError || err instanceof PairingError) return err.code;
  throw err;
}

describe("pairing handshake", () => {
  test("joiner gets a certificate at the invite's level and the mesh statements; both see one code", async () => {
    const revoked = issueTrustCert(founder, meshId, stranger.peerId, "verified", { issuedAt: T0 });
    store.add(revoked);
    const { joined, handled } = await pair(await newInvite());
    if (joined.status !== "fulfilled" || handled.status !== "fulfilled") throw new Error(`pairing failed: ${codeOf(joined)} / ${codeOf(handled)}`);
    expect(joined.value.comparisonCode).toMatch(/^\d{6}$/);
    expect(joined.value.comparisonCode).toBe(handled.value.comparisonCode);
    expect(joined.value.certificate.id).toBe(handled.value.certificate.id);
    expect(joined.value.certificate.body).toMatchObject({ subject: laptop.peerId, issuer: founder.peerId, level: "verified", meshId });
    expect(joined.value.level).toBe("verified");
    expect(joined.value.statements.map((s) => s.id).sort()).toEqual([genesis.id, revoked.id].sort());
    expect(handled.value.joiner).toBe(laptop.peerId);
    expect(handled.value.invite.usedBy).toBe(laptop.peerId);
    store.add(handled.value.certificate);
    expect(store.level(laptop.peerId, clock)).toBe("verified");
  });

  test("the outcome is filed before the welcome: a joiner never holds a certificate the inviter did not keep; the code is kept with the invite across a reopen", async () => {
    const failing = await pair(await newInvite(), laptop, context({ file: () => Promise.reject(new Error("disk full")) }));
    expect(failing.handled.status).toBe("rejected");
    expect(failing.joined.status).toBe("rejected");
    const filed: string[] = [];
    const { joined, handled } = await pair(await newInvite(), laptop, context({ file: async (outcome) => void filed.push(outcome.certificate.id) }));
    if (joined.status !== "fulfilled" || handled.status !== "fulfilled") throw new Error(`pairing failed: ${codeOf(joined)} / ${codeOf(handled)}`);
    expect(filed).toEqual([joined.value.certificate.id]);
    const reopened = await InviteBook.openFile(join(dir, "invites.json"));
    expect(reopened.list().findLast((i) => i.usedBy === laptop.peerId)?.comparisonCode).toBe(joined.value.comparisonCode);
  });

  test("a trusted invite with a certificate lifetime", async () => {
    const { joined } = await pair(await newInvite("trusted"), laptop, context({ certificateTtlMs: 60_000 }));
    if (joined.status !== "fulfilled") throw new Error(codeOf(joined));
    expect(joined.value.level).toBe("trusted");
    expect(joined.value.certificate.body.expiresAt).toBe(clock + 60_000);
  });

  test("every message survives a JSON wire", async () => {
    const [joinerEnd, inviterEnd] = memoryChannelPair<unknown>();
    const json = (end: PairingChannel): PairingChannel => through(end, (msg) => JSON.stringify(msg), (text) => JSON.parse(text as string) as unknown);
    const [joined] = await Promise.all([runPairingJoiner(json(joinerEnd), await newInvite(), laptop), handlePairingRequest(json(inviterEnd), context())]);
    expect(joined.level).toBe("verified");
  });

  test("the secret never crosses the wire", async () => {
    const invite = await newInvite();
    const [joinerEnd, inviterEnd] = memoryChannelPair<unknown>();
    const seen: unknown[] = [];
    const tap = (end: PairingChannel): PairingChannel => through(end, (msg) => (seen.push(msg), msg));
    await Promise.all([runPairingJoiner(tap(joinerEnd), invite, laptop), handlePairingRequest(tap(inviterEnd), context())]);
    expect(JSON.stringify(seen)).not.toContain(toBase64Url(invite.secret));
    expect(seen).toHaveLength(4);
  });
});

describe("refusals reach both sides with their codes", () => {
  test("replayed invite", async () => {
    const invite = await newInvite();
    expect(codeOf((await pair(invite)).joined)).toBe("accepted");
    const again = await pair(invite, stranger);
    expect(codeOf(again.joined)).toBe("INVITE_REPLAYED");
    expect(codeOf(again.handled)).toBe("INVITE_REPLAYED");
  });

  test("expired invite", async () => {
    const invite = await newInvite();
    clock = invite.expiresAt;
    const { joined, handled } = await pair(invite);
    expect(codeOf(joined)).toBe("INVITE_EXPIRED");
    expect(codeOf(handled)).toBe("INVITE_EXPIRED");
  });

  test("wrong secret, then rate limited", async () => {
    const invite = await newInvite();
    const guessed = { ...invite, secret: new Uint8Array(16).fill(7) };
    for (let i = 0; i < 3; i += 1) {
      const { joined, handled } = await pair(guessed);
      expect(codeOf(joined)).toBe("INVITE_WRONG_SECRET");
      expect(codeOf(handled)).toBe("INVITE_WRONG_SECRET");
    }
    expect(codeOf((await pair(invite)).joined)).toBe("INVITE_RATE_LIMITED");
  });

  test("invite of another mesh", async () => {
    const invite = await newInvite();
    const { joined, handled } = await pair({ ...invite, meshId: otherGenesis.body.meshId });
    expect(codeOf(joined)).toBe("INVITE_OTHER_MESH");
    expect(codeOf(handled)).toBe("INVITE_OTHER_MESH");
  });

  test("an answer from a device other than the invite's inviter", async () => {
    const invite = await newInvite();
    const { joined } = await pair(invite, laptop, context({ identity: stranger }));
    expect(codeOf(joined)).toBe("PAIRING_PEER_MISMATCH");
  });

  test("a connection whose transport identity differs from the hello", async () => {
    const { joined, handled } = await pair(await newInvite(), laptop, context({ remotePeer: stranger.peerId }));
    expect(codeOf(handled)).toBe("PAIRING_PEER_MISMATCH");
    expect(codeOf(joined)).toBe("PAIRING_PROTOCOL");
  });

  test("a joiner claiming a device key it does not hold", async () => {
    const impostor: DeviceIdentity = { ...stranger, sign: laptop.sign };
    const invite = await newInvite();
    const { handled } = await pair(invite, impostor);
    expect(codeOf(handled)).toBe("PAIRING_JOINER_UNPROVEN");
    expect(book.list()[0]!.usedAt).toBeUndefined();
  });

  test("an inviter that does not know the secret is caught by the joiner", async () => {
    const invite = await newInvite();
    const [joinerEnd, fake] = memoryChannelPair<unknown>();
    const joining = runPairingJoiner(joinerEnd, invite, laptop, { timeoutMs: 2000 });
    await receiveWithin(fake, 2000);
    await fake.send({ type: "challenge", inviter: founder.peerId, nonce: toBase64Url(new Uint8Array(32)) });
    await receiveWithin(fake, 2000);
    const cert = issueTrustCert(stranger, meshId, laptop.peerId, "verified");
    await fake.send({ type: "welcome", mac: toBase64Url(new Uint8Array(32)), certificate: toBase64Url(cert.bytes), statements: [] });
    await expect(joining).rejects.toMatchObject({ code: "PAIRING_INVITER_UNPROVEN" });
  });

  test("off-schema and oversize messages are protocol errors", async () => {
    const [a, b] = memoryChannelPair<unknown>();
    const handling = handlePairingRequest(b, context());
    await a.send({ type: "hello", v: 1, inviteId: "x".repeat(100000) });
    await expect(handling).rejects.toMatchObject({ code: "PAIRING_PROTOCOL" });
    expect(await receiveWithin(a, 2000)).toMatchObject({ type: "error", code: "PAIRING_PROTOCOL" });
  });

  test("a silent peer times out", async () => {
    const [a] = memoryChannelPair<unknown>();
    await expect(runPairingJoiner(a, await newInvite(), laptop, { timeoutMs: 50 })).rejects.toMatchObject({ code: "PAIRING_TIMEOUT" });
  });

  test("received statements are verified: a tampered one fails the join", async () => {
    const forged = new Uint8Array(genesis.bytes);
    forged[forged.length - 70]! ^= 1;
    expect(() => decodeStatement(forged)).toThrow();
    const invite = await newInvite();
    const { joined } = await pair(invite, laptop, context({ statements: () => [{ ...genesis, bytes: forged }] }));
    expect(codeOf(joined)).toBe("PAIRING_BAD_CERTIFICATE");
  });
});
