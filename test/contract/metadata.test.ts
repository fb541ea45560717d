import { describe, expect, it } from "vitest";
import { parseSubmitRequest } from "../../src/engine/submit-schema.js";
import { submitEnvelopeSchema } from "../../protocols/task/messages.js";
import { InvalidInputError } from "../../src/contract/errors.js";

/** Objects nested `depth` deep, parsed from text as an edge would receive them. */
function nested(depth: number): unknown {
  return JSON.parse(`${'{"a":'.repeat(depth)}"leaf"${"}".repeat(depth)}`);
}

describe("task metadata is bounded in depth and size before any recursive validation", () => {
  it("the engine (behind the control socket and every adapter) refuses 5,000-deep metadata naming the field and the limit", () => {
    const err = (() => {
      try {
        parseSubmitRequest({ description: "d", input: "x", metadata: { deep: nested(5000) } });
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err).toMatchObject({ field: "metadata" });
    expect((err as Error).message).toMatch(/nested deeper than 32 levels/);
    expect(parseSubmitRequest({ description: "d", input: "x", metadata: { deep: nested(30) } }).metadata).toBeDefined();
  });

  it("the engine refuses metadata over the size limit, and wide shallow metadata does not escape the count", () => {
    const wide = Object.fromEntries(Array.from({ length: 20_000 }, (_, i) => [`k${i}`, i]));
    expect(() => parseSubmitRequest({ description: "d", input: "x", metadata: wide })).toThrow(/at most 65536 bytes/);
  });

  it("the mesh task protocol refuses a signed submission with deep metadata at request.metadata", () => {
    const parsed = submitEnvelopeSchema.safeParse({
      request: { description: "d", input: "x", metadata: { deep: nested(5000) } },
      requester: "peer",
      meshId: "mesh",
      issuedAt: 1,
      nonce: new Uint8Array(16),
    });
    expect(parsed.success).toBe(false);
    expect(parsed.error?.issues[0]).toMatchObject({ path: ["request", "metadata"], message: "must not be nested deeper than 32 levels" });
  });
});
