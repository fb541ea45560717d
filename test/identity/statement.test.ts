import { describe, expect, test } from "vitest";
import { z } from "zod";
import {
  DecodeError,
  decodeCanonical,
  decodeStatement,
  deriveMeshId,
  encodeCanonical,
  fromHex,
  registerStatementKind,
  signStatement,
  STATEMENT_LIMITS,
  toHex,
} from "../../identity/index.js";
import { identity } from "./helpers.js";

const a = identity(1);
const b = identity(2);
const createdAt = 1_700_000_000_000;
const meshId = deriveMeshId(a.peerId, "home", createdAt);

// Frozen: if these change, every signature and id ever issued breaks.
const GOLDEN = {
  a: "12D3KooWK99VoVxNE7XzyBwXEzW7xhK7Gpv85r9F3V3fyKSUKPH5",
  fingerprint: "4baq-ukcm-qqp3-xily",
  meshId: "mesh-23qq35znvxveunerfnd3fsid6a",
  genesis:
    "a5617601637369675840641ebe7d2423bedd17ab994cc317f31b65db7b518c596f16d6528de5f7d4149e2dca4490fe437364a0208f3dc6b560d8805255264dc83eb18afe628c5e6db80564626f6479a4646e616d6564686f6d65666d6573684964781f6d6573682d3233717133357a6e76787665756e6572666e643366736964366167666f756e6465727834313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b504835696372656174656441741b0000018bcfe56800646b696e646c6d6573682d67656e65736973666973737565727834313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b504835",
  genesisId: "5ab7cc854004325b1568f0148a5507055fc1a9d6f7a15829523d5ca6a22a2cab",
  cert:
    "a5617601637369675840f50f371f420b4d2db1b064c0d6c84f249334abd541b2a4f71cafb831329bc375bfc04675f6adbaaa73f5908e7ced8acca325693f07fb2b20ceb0016b03fed80864626f6479a6656c6576656c6774727573746564656e6f6e63655009090909090909090909090909090909666973737565727834313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b504835666d6573684964781f6d6573682d3233717133357a6e76787665756e6572666e6433667369643661677375626a6563747834313244334b6f6f574a576f61715a6844616f454673684637526831627059396f68696846687a6357366436394c72324e415375716869737375656441741b0000018bcfe56801646b696e646a74727573742d63657274666973737565727834313244334b6f6f574b3939566f56784e4537587a79427758457a573778684b37477076383572394633563366794b53554b504835",
  certId: "1cc922707b1c91bcdf808790cb7c93eb4d7639d26ad6a21fef63bf92ff5a6194",
};

// How a layer above adds a kind: declaration merging for the type, a schema at run time.
declare module "../../identity/statement-kinds.js" {
  interface StatementBodies {
    "test-role": { issuer: string; role: string };
  }
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof DecodeError) return err.code;
    throw err;
  }
  return "accepted";
}

describe("golden vectors", () => {
  test("device id, fingerprint and mesh id", () => {
    expect(a.peerId).toBe(GOLDEN.a);
    expect(a.fingerprint).toBe(GOLDEN.fingerprint);
    expect(meshId).toBe(GOLDEN.meshId);
  });

  test("signing gives the frozen bytes and ids", () => {
    const genesis = signStatement(a, "mesh-genesis", { meshId, founder: a.peerId, name: "home", createdAt });
    expect(toHex(genesis.bytes)).toBe(GOLDEN.genesis);
    expect(genesis.id).toBe(GOLDEN.genesisId);
    const cert = signStatement(a, "trust-cert", {
      issuer: a.peerId,
      subject: b.peerId,
      level: "trusted",
      meshId,
      issuedAt: createdAt + 1,
      nonce: new Uint8Array(16).fill(9),
    });
    expect(toHex(cert.bytes)).toBe(GOLDEN.cert);
    expect(cert.id).toBe(GOLDEN.certId);
  });

  test("the frozen bytes decode, verify and keep their ids", () => {
    const genesis = decodeStatement(fromHex(GOLDEN.genesis));
    expect(genesis.kind).toBe("mesh-genesis");
    expect(genesis.id).toBe(GOLDEN.genesisId);
    const cert = decodeStatement(fromHex(GOLDEN.cert));
    expect(cert.id).toBe(GOLDEN.certId);
    expect(cert.body).toMatchObject({ subject: b.peerId, level: "trusted" });
  });
});

describe("canonical encoding", () => {
  test("key order does not change the bytes", () => {
    expect(toHex(encodeCanonical({ b: 1, a: [1, "x"], ccc: new Uint8Array([1]) }))).toBe(toHex(encodeCanonical({ ccc: new Uint8Array([1]), a: [1, "x"], b: 1 })));
  });

  test("accepts canonical floats and nested values", () => {
    expect(decodeCanonical(fromHex("f93e00"), STATEMENT_LIMITS)).toBe(1.5);
    const value = { z: [1.1, -2.5e300, "é", null, true], a: { b: new Uint8Array([1, 2]) }, long: "x".repeat(30) };
    expect(decodeCanonical(encodeCanonical(value), STATEMENT_LIMITS)).toEqual(value);
  });

  test("optional fields left undefined are omitted", () => {
    expect(toHex(encodeCanonical({ a: 1, b: undefined }))).toBe(toHex(encodeCanonical({ a: 1 })));
  });

  test.each([
    ["duplicate key", "a2616101616102", "DUPLICATE_KEY"],
    ["unsorted keys", "a2616202616101", "NOT_CANONICAL"],
    ["non-minimal integer", "1801", "MALFORMED"],
    ["indefinite array", "9f01ff", "MALFORMED"],
    ["tag", "c11a514b67b0", "MALFORMED"],
    ["undefined", "f7", "MALFORMED"],
    ["NaN", "f97e00", "MALFORMED"],
    ["float64 that fits float16", "fb3ff0000000000000", "NOT_CANONICAL"],
    ["non-string key", "a10101", "WRONG_TYPE"],
    ["invalid UTF-8 text", "62c328", "NOT_CANONICAL"],
    ["truncated 4-byte UTF-8 sequence", "63f09080", "NOT_CANONICAL"],
    ["float32 that fits float16", "fa3fc00000", "NOT_CANONICAL"],
    ["integral float", "f93c00", "NOT_CANONICAL"],
    ["keys sorted by JS order, not canonical order", "a2626161016162", "NOT_CANONICAL"],
    ["trailing bytes", "0101", "MALFORMED"],
    ["truncated", "6361", "MALFORMED"],
    ["empty input", "", "MALFORMED"],
  ])("refuses %s", (_, hex, expected) => {
    expect(code(() => decodeCanonical(fromHex(hex), STATEMENT_LIMITS))).toBe(expected);
  });

  test("refuses oversize and excessive depth before decoding", () => {
    expect(code(() => decodeCanonical(new Uint8Array(5000), STATEMENT_LIMITS))).toBe("OVERSIZE");
    expect(code(() => decodeCanonical(new Uint8Array([...new Array(9).fill(0x81), 0x01]), STATEMENT_LIMITS))).toBe("TOO_DEEP");
    expect(code(() => decodeCanonical(new Uint8Array(200_000).fill(0x81), { maxBytes: 1e6, maxDepth: 64 }))).toBe("TOO_DEEP");
    expect(decodeCanonical(new Uint8Array([...new Array(8).fill(0x81), 0x01]), STATEMENT_LIMITS)).toEqual([[[[[[[[1]]]]]]]]);
  });
});

describe("strict statement decoder", () => {
  const genesis = signStatement(a, "mesh-genesis", { meshId, founder: a.peerId, name: "home", createdAt });
  const fields = { v: 1, kind: genesis.kind, body: genesis.body, issuer: genesis.issuer, sig: genesis.sig };

  test.each([
    ["unknown version", { ...fields, v: 2 }, "UNKNOWN_VERSION"],
    ["missing version", { kind: fields.kind, body: fields.body, issuer: fields.issuer, sig: fields.sig }, "UNKNOWN_VERSION"],
    ["extra envelope key", { ...fields, extra: 1 }, "WRONG_TYPE"],
    ["unknown kind", { ...fields, kind: "role-grant-x" }, "UNKNOWN_KIND"],
    ["issuer not a device id", { ...fields, issuer: "alice" }, "WRONG_TYPE"],
    ["short signature", { ...fields, sig: genesis.sig.subarray(1) }, "WRONG_TYPE"],
    ["body of wrong type", { ...fields, body: { ...genesis.body, createdAt: "yesterday" } }, "WRONG_TYPE"],
    ["body with extra field", { ...fields, body: { ...genesis.body, admin: true } }, "WRONG_TYPE"],
    ["altered body", { ...fields, body: { ...genesis.body, name: "work" } }, "BAD_SIGNATURE"],
    ["signed by someone else", { ...fields, issuer: b.peerId }, "BAD_SIGNATURE"],
    ["forged signature", { ...fields, sig: new Uint8Array(64).fill(1) }, "BAD_SIGNATURE"],
  ])("refuses %s", (_, envelope, expected) => {
    expect(code(() => decodeStatement(encodeCanonical(envelope)))).toBe(expected);
  });

  test("a body naming another signer cannot be signed", () => {
    expect(code(() => signStatement(b, "mesh-genesis", genesis.body))).toBe("BAD_SIGNATURE");
  });
});

describe("kind registry", () => {
  test("a new kind can be registered, signed and decoded; names cannot be reused", () => {
    const schema = z.strictObject({ issuer: z.string(), role: z.string().max(32) });
    registerStatementKind("test-role", { schema, signer: (body) => body.issuer });
    const st = signStatement(a, "test-role", { issuer: a.peerId, role: "admin" });
    const decoded = decodeStatement(st.bytes);
    expect(decoded.kind === "test-role" && decoded.body.role).toBe("admin");
    expect(() => registerStatementKind("test-role", { schema, signer: (body) => body.issuer })).toThrow(/already registered/);
  });
});
