import { describe, expect, test } from "vitest";
import fc from "fast-check";
import { fromHex, nobleEd25519, nodeEd25519, toHex } from "../../identity/index.js";

// RFC 8032 section 7.1, tests 1-3: bytes that must never change.
const RFC8032 = [
  {
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    pub: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    msg: "",
    sig: "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    pub: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    msg: "72",
    sig: "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
  {
    seed: "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
    pub: "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
    msg: "af82",
    sig: "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
  },
];

describe.each([nodeEd25519, nobleEd25519])("$name", (impl) => {
  test.each(RFC8032)("RFC 8032 vector $pub", ({ seed, pub, msg, sig }) => {
    expect(toHex(impl.publicKey(fromHex(seed)))).toBe(pub);
    expect(toHex(impl.sign(fromHex(msg), fromHex(seed)))).toBe(sig);
    expect(impl.verify(fromHex(sig), fromHex(msg), fromHex(pub))).toBe(true);
  });

  test("malformed keys and signatures are a no, never a throw", () => {
    const { pub, sig } = RFC8032[0]!;
    expect(impl.verify(fromHex(sig).subarray(1), new Uint8Array(), fromHex(pub))).toBe(false);
    expect(impl.verify(fromHex(sig), new Uint8Array(), fromHex(pub).subarray(1))).toBe(false);
    expect(impl.verify(fromHex(sig), new Uint8Array(), new Uint8Array(32).fill(0xff))).toBe(false);
    expect(impl.verify(new Uint8Array(64).fill(0xff), new Uint8Array(), fromHex(pub))).toBe(false);
  });
});

describe("node:crypto and @noble/ed25519 agree", () => {
  const seed = fc.uint8Array({ minLength: 32, maxLength: 32 });
  const message = fc.uint8Array({ maxLength: 300 });

  test("same public keys, same signatures, both verify", () => {
    fc.assert(
      fc.property(seed, message, (s, m) => {
        const pub = nodeEd25519.publicKey(s);
        expect(toHex(nobleEd25519.publicKey(s))).toBe(toHex(pub));
        const sig = nodeEd25519.sign(m, s);
        expect(toHex(nobleEd25519.sign(m, s))).toBe(toHex(sig));
        expect(nodeEd25519.verify(sig, m, pub)).toBe(true);
        expect(nobleEd25519.verify(sig, m, pub)).toBe(true);
      }),
      { numRuns: 200 },
    );
  });

  test("same verdicts on tampered signatures, messages and keys", () => {
    fc.assert(
      fc.property(seed, seed, message, fc.nat(), fc.integer({ min: 0, max: 7 }), fc.constantFrom("sig", "msg", "key", "other-key"), (s, s2, m, at, bit, what) => {
        const pub = nodeEd25519.publicKey(s);
        const sig = nodeEd25519.sign(m, s);
        const tsig = new Uint8Array(sig);
        let tmsg: Uint8Array = new Uint8Array(m);
        let tpub: Uint8Array = new Uint8Array(pub);
        if (what === "sig") tsig[at % 64]! ^= 1 << bit;
        if (what === "msg") tmsg = m.length === 0 ? new Uint8Array([1]) : (tmsg[at % m.length]! ^= 1 << bit, tmsg);
        if (what === "key") tpub[at % 32]! ^= 1 << bit;
        if (what === "other-key") tpub = nodeEd25519.publicKey(s2);
        const verdict = nodeEd25519.verify(tsig, tmsg, tpub);
        expect(nobleEd25519.verify(tsig, tmsg, tpub)).toBe(verdict);
        if (what !== "other-key" || toHex(s) !== toHex(s2)) expect(verdict).toBe(false);
      }),
      { numRuns: 300 },
    );
  });
});
