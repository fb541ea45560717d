import { expect, test } from "vitest";
import fc from "fast-check";
import {
  createInvite,
  createMeshGenesis,
  DecodeError,
  decodeCanonical,
  decodeStatement,
  encodeCanonical,
  encodeInvite,
  InviteError,
  issueRevocation,
  issueTrustCert,
  parseInvite,
  STATEMENT_LIMITS,
  toBase64Url,
  toHex,
} from "../../identity/index.js";
import { identity } from "./helpers.js";

// A seeded generator keeps failures reproducible and costs far less than fast-check at 100k runs.
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

const a = identity(1);
const b = identity(2);
const genesis = createMeshGenesis(a, "fuzz", 1_700_000_000_000);
const seeds = [
  genesis.bytes,
  issueTrustCert(a, genesis.body.meshId, b.peerId, "verified", { issuedAt: 1, expiresAt: 2 }).bytes,
  issueRevocation(a, b.peerId, "lost laptop", 3).bytes,
];

function mutate(next: () => number, input: Uint8Array): Uint8Array {
  const pick = (n: number) => next() % n;
  switch (pick(6)) {
    case 0: {
      const out = new Uint8Array(input);
      for (let i = 1 + pick(4); i > 0; i -= 1) out[pick(out.length)]! ^= 1 << pick(8);
      return out;
    }
    case 1:
      return input.subarray(0, pick(input.length));
    case 2: {
      const other = seeds[pick(seeds.length)]!;
      const cut = pick(input.length);
      const tail = other.subarray(pick(other.length));
      const out = new Uint8Array(cut + tail.length);
      out.set(input.subarray(0, cut));
      out.set(tail, cut);
      return out;
    }
    case 3: {
      const at = pick(input.length + 1);
      const out = new Uint8Array(input.length + 1);
      out.set(input.subarray(0, at));
      out[at] = next() & 0xff;
      out.set(input.subarray(at), at + 1);
      return out;
    }
    case 4: {
      const out = new Uint8Array(input);
      out[pick(out.length)] = [0x00, 0x17, 0x18, 0x1f, 0x5f, 0x7f, 0x9f, 0xbf, 0xf7, 0xff, 0xc0][pick(11)]!;
      return out;
    }
    default:
      return Uint8Array.from({ length: pick(64) }, () => next() & 0xff);
  }
}

test("100,000 random and mutated statements: no crash, only DecodeErrors", () => {
  const next = prng(0xc0de);
  const codes = new Map<string, number>();
  let accepted = 0;
  const runs = 100_000;
  for (let i = 0; i < runs; i += 1) {
    const base = seeds[next() % seeds.length]!;
    const input = mutate(next, base);
    try {
      const value = decodeCanonical(input, STATEMENT_LIMITS);
      // The decoder checks canonical form token by token; whatever it lets
      // through must be exactly what the encoder makes of the value.
      if (toHex(encodeCanonical(value)) !== toHex(input)) throw new Error(`accepted a non-canonical encoding: ${toHex(input)}`);
      decodeStatement(input);
      accepted += 1;
    } catch (err) {
      if (!(err instanceof DecodeError)) throw new Error(`untyped error on ${toBase64Url(input)}: ${String(err)}`);
      codes.set(err.code, (codes.get(err.code) ?? 0) + 1);
    }
  }
  // Mutations that happen to reproduce a valid statement (a truncation to full length, a no-op splice) are fine.
  expect(accepted).toBeLessThan(runs / 10);
  expect([...codes.keys()]).toEqual(expect.arrayContaining(["MALFORMED", "NOT_CANONICAL", "BAD_SIGNATURE", "WRONG_TYPE"]));
  // A few seconds on an idle machine; the generous bound only keeps a busy shared CI box from failing it.
}, 180_000);

test("20,000 mutated invite strings: only InviteErrors", () => {
  const next = prng(0x1eaf);
  const invite = encodeInvite(createInvite({ meshId: genesis.body.meshId, inviter: a.peerId, addrs: ["/ip4/127.0.0.1/tcp/4001"], level: "verified", expiresAt: 5 }));
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
  for (let i = 0; i < 20_000; i += 1) {
    const chars = [...invite];
    const edits = 1 + (next() % 3);
    for (let e = 0; e < edits; e += 1) {
      if (chars.length === 0) break;
      const at = next() % chars.length;
      const op = next() % 3;
      if (op === 0) chars[at] = alphabet[next() % alphabet.length]!;
      else if (op === 1) chars.splice(at, 1);
      else chars.length = Math.max(1, at);
    }
    try {
      parseInvite(chars.join(""));
    } catch (err) {
      if (!(err instanceof InviteError) || err.code !== "INVITE_MALFORMED") throw err;
    }
  }
});

const valueArb = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    fc.integer({ min: -(2 ** 53) + 1, max: 2 ** 53 - 1 }),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Object.is(d, -0)),
    fc.string({ unit: "binary", maxLength: 40 }),
    fc.uint8Array({ maxLength: 40 }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie("value"), { maxLength: 4 }),
    fc.dictionary(fc.string({ unit: "binary", maxLength: 8 }).filter((k) => k !== "__proto__"), tie("value"), { maxKeys: 4 }),
  ),
})).value;

test("random values round-trip, and their single-byte mutations decode canonically or not at all", () => {
  fc.assert(
    fc.property(valueArb, fc.nat(), fc.integer({ min: 0, max: 255 }), (value, at, byte) => {
      const bytes = encodeCanonical(value);
      expect(toHex(encodeCanonical(decodeCanonical(bytes, { maxBytes: 1 << 20, maxDepth: 64 })))).toBe(toHex(bytes));
      const mutated = new Uint8Array(bytes);
      mutated[at % mutated.length] = byte;
      try {
        const back = decodeCanonical(mutated, { maxBytes: 1 << 20, maxDepth: 64 });
        expect(toHex(encodeCanonical(back))).toBe(toHex(mutated));
      } catch (err) {
        if (!(err instanceof DecodeError)) throw err;
      }
    }),
    { numRuns: 3000 },
  );
});
