import { describe, expect, it } from "vitest";
import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import { InvalidInputError } from "../../src/contract/errors.js";

const schema = z.strictObject({ name: z.string(), inner: z.strictObject({ n: z.number() }).optional() });

function refusal(value: unknown, base?: string): InvalidInputError {
  try {
    parseInput(schema, value, base);
  } catch (err) {
    if (err instanceof InvalidInputError) return err;
    throw err;
  }
  throw new Error("accepted");
}

describe("parseInput", () => {
  it("returns what the schema accepts", () => {
    expect(parseInput(schema, { name: "a" })).toEqual({ name: "a" });
  });

  it("names the offending field by its dotted path, under a base when given", () => {
    expect(refusal({ name: 1 }).field).toBe("name");
    expect(refusal({ name: "a", inner: { n: "x" } }, "body").field).toBe("body.inner.n");
    expect(refusal("not an object").field).toBeUndefined();
    expect(refusal("not an object", "query").field).toBe("query");
  });

  it("names an unknown field, with the path leading to it", () => {
    const top = refusal({ name: "a", prority: 1 });
    expect(top.message).toMatch(/unknown field\(s\): prority$/);
    expect(top.field).toBe("prority");
    expect(refusal({ name: "a", inner: { n: 1, extra: true } }).field).toBe("inner.extra");
  });
});
