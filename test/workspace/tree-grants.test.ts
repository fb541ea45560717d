import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { deviceIdentityFromSeed } from "../../identity/device.js";
import { decodeCanonical, encodeCanonical } from "../../identity/canonical.js";
import { executorGrantOf, withExecutorGrant } from "../../node/workspaces/executor-grant.js";
import { grantedReads } from "../../node/workspaces/grant-reads.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { grantRefusal, readTreeGrant, signTreeGrant } from "../../node/workspaces/tree-grants.js";

const submitter = deviceIdentityFromSeed(randomBytes(32));
const grantee = deviceIdentityFromSeed(randomBytes(32));
const other = deviceIdentityFromSeed(randomBytes(32));
const TREE = "a".repeat(64);
const NOW = 1_800_000_000_000;
const context = { peer: grantee.peerId, tree: TREE, owner: submitter.peerId, mesh: "m1", now: NOW, isRevoked: (_id: string): boolean => false };
const grant = signTreeGrant(submitter, { mesh: "m1", tree: TREE, grantee: grantee.peerId, expires: NOW + 1000 });

/** `grant` with its fields changed and signed again by `by`, or with the signature of the original kept. */
function altered(change: Record<string, unknown>, keepSig = false, by = submitter): Uint8Array {
  const { sig, ...body } = decodeCanonical(grant, { maxBytes: 1024, maxDepth: 2 }) as Record<string, unknown>;
  if (keepSig) return encodeCanonical({ ...body, ...change, sig });
  const { v: _v, issuer: _issuer, ...fields } = { ...body, ...change } as { v: number; issuer: string; mesh: string; tree: string; grantee: string; expires: number };
  return signTreeGrant(by, fields);
}

describe("tree grants", () => {
  it("a grant lets its grantee read its tree until it expires, and nothing else", () => {
    expect(readTreeGrant(grant)).toMatchObject({ tree: TREE, grantee: grantee.peerId, issuer: submitter.peerId });
    expect(grant.byteLength).toBeLessThan(400);
    expect(grantRefusal(grant, context)).toBeUndefined();
    const cases: Array<[string, Uint8Array | undefined, Partial<typeof context>, RegExp]> = [
      ["absent", undefined, {}, /^no grant$/],
      ["expired", grant, { now: NOW + 1000 }, /expired at/],
      ["another grantee presents it", grant, { peer: other.peerId }, /presented by/],
      ["another tree", grant, { tree: "b".repeat(64) }, /a grant for tree a+, not b+/],
      ["another mesh", grant, { mesh: "m2" }, /for mesh m1, not this one/],
      ["signed by other than the submitter", altered({}, false, other), {}, /not by the tree's submitter/],
      ["the submitter revoked", grant, { isRevoked: (id: string) => id === submitter.peerId }, /which is revoked/],
      ["a field changed under the signature", altered({ expires: NOW + 10_000_000 }, true), {}, /signature does not verify/],
      ["the issuer changed under the signature", altered({ issuer: other.peerId }, true), { owner: other.peerId }, /signature does not verify/],
      ["an extra field", altered({ extra: 1 }, true), {}, /malformed grant: \(grant\): Unrecognized key/],
      ["not CBOR", new Uint8Array([0xff, 0x00]), {}, /malformed grant/],
      ["oversize", new Uint8Array(2048), {}, /over the limit of 1024/],
      ["not a device id as grantee", altered({ grantee: "nobody" }, true), {}, /grantee: expected a device id/],
    ];
    for (const [what, bytes, change, reason] of cases) expect(grantRefusal(bytes, { ...context, ...change }), what).toMatch(reason);
  });

  it("the holder honours grants for trees held here, by their owner only, and audits each refusal of a held tree", () => {
    const shared = new SharedTrees();
    const audited: string[] = [];
    const reads = grantedReads({ shared, meshId: () => "m1", isRevoked: () => false, audit: (e) => audited.push(`${e.peer} ${e.reason ?? ""}`), now: () => NOW });
    // Not held here: refused, and nothing to audit (the answer reads the same whether or not it is held).
    expect(reads(grantee.peerId, TREE, grant)).toBe(false);
    shared.share(TREE, new Uint8Array(1), new Set());
    // Held, but with no submitter known here: no grant counts.
    expect(reads(grantee.peerId, TREE, grant)).toBe(false);
    expect(audited).toEqual([]);
    shared.own(TREE, submitter.peerId);
    expect(reads(grantee.peerId, TREE, grant)).toBe(true);
    // Its submitter reads it without a grant.
    expect(reads(submitter.peerId, TREE, undefined)).toBe(true);
    expect(reads(other.peerId, TREE, grant)).toBe(false);
    expect(reads(other.peerId, TREE, undefined)).toBe(false);
    expect(audited).toEqual([`${other.peerId} a grant for ${grantee.peerId}, presented by ${other.peerId}`, `${other.peerId} no grant`]);
    // A member asking without end is audited a burst's worth, then rarely.
    for (let i = 0; i < 100; i++) reads(other.peerId, TREE, undefined);
    expect(audited.length).toBeLessThanOrEqual(21);
  });

  it("an attempt carries its executor's grant in its signed request; a malformed one is refused naming the field", () => {
    const request = withExecutorGrant({ description: "d", input: "", metadata: { workspace: { tree: TREE, bytes: 1, files: 1 } } }, grant);
    expect(executorGrantOf(request.metadata)).toEqual(grant);
    expect(executorGrantOf({})).toBeUndefined();
    for (const bad of [42, "", "not base64!", "A".repeat(2000)]) {
      expect(() => executorGrantOf({ workspaceGrant: bad }), String(bad).slice(0, 20)).toThrow(expect.objectContaining({ code: "INVALID_INPUT", field: "metadata.workspaceGrant" }));
    }
  });
});
