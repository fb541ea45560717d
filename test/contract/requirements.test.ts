import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/contract/errors.js";
import { formatRequirements, parseRemoteStep, parseRequirements } from "../../src/contract/requirements.js";
import { parseSubmitOptions } from "../../src/contract/submit-options.js";
import type { TaskRequirements } from "../../src/contract/types.js";

/** The error `fn` throws, to check its class, field and whole message. */
function thrown(fn: () => unknown): InvalidInputError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(InvalidInputError);
    return err as InvalidInputError;
  }
  throw new Error("expected a refusal");
}

describe("requirements in text", () => {
  it("reads labels and least amounts, ignores whitespace, and merges repeats keeping the larger amount", () => {
    expect(parseRequirements("gpu")).toEqual({ labels: ["gpu"] });
    expect(parseRequirements(" gpu , cpu>=4,memoryGiB = 0.5,cpu>=2, gpu ")).toEqual({ labels: ["gpu"], resources: { cpu: 4, memoryGiB: 0.5 } });
    expect(parseRequirements("cpu=1,cpu>=3,disk>=.25,tiny>=1e-7")).toEqual({ resources: { cpu: 3, disk: 0.25, tiny: 1e-7 } });
  });

  it("refuses an item on field requires, saying which one and why", () => {
    const cases: Array<[string, string]> = [
      ["gpu,cpu>=x", 'requires: item 2 "cpu>=x": amount must be a number >= 0'],
      ["cpu>=", 'requires: item 1 "cpu>=": amount must be a number >= 0'],
      ["cpu>=-1", 'requires: item 1 "cpu>=-1": amount must be a number >= 0'],
      ["cpu>=0x10", 'requires: item 1 "cpu>=0x10": amount must be a number >= 0'],
      ["cpu>=Infinity", 'requires: item 1 "cpu>=Infinity": amount must be a number >= 0'],
      ["cpu>=1e400", 'requires: item 1 "cpu>=1e400": amount must be a number >= 0'],
      ["gpu,,cpu", 'requires: item 2 "": empty'],
      ["", 'requires: item 1 "": empty'],
      ["cpu<=4", 'requires: item 1 "cpu<=4": expected name>=amount or name=amount'],
      ["has space", `requires: item 1 "has space": name may hold only letters, digits, '.', '_' and '-'`],
      ["__proto__>=1", 'requires: item 1 "__proto__>=1": name __proto__ is reserved'],
      [`${"x".repeat(65)}`, `requires: item 1 "${"x".repeat(65)}": name must be at most 64 characters`],
    ];
    for (const [text, message] of cases) {
      const err = thrown(() => parseRequirements(text));
      expect([err.message, err.field]).toEqual([message, "requires"]);
    }
    expect(thrown(() => parseRequirements("gpu,".repeat(3000))).message).toBe("requires: must be at most 8192 characters");
    const many = Array.from({ length: 33 }, (_, i) => `l${i}`).join(",");
    expect(thrown(() => parseRequirements(many)).message).toBe("requires.labels: at most 32 labels");
  });

  it("refuses the label __proto__ wherever requirements come from", () => {
    expect(thrown(() => parseSubmitOptions({ requires: { labels: ["__proto__"] } })).message).toBe("requires.labels.0: __proto__ is reserved");
  });

  it("reads the upstream remote step form", () => {
    expect(parseRemoteStep("remote:auto[gpu,high-memory]")).toEqual({ route: "auto", requires: { labels: ["gpu", "high-memory"] } });
    expect(parseRemoteStep("remote:auto")).toEqual({ route: "auto" });
    expect(parseRemoteStep("remote:auto[]")).toEqual({ route: "auto" });
    expect(parseRemoteStep(" remote:12D3KooWPeer[cpu>=4, gpu] ")).toEqual({ route: "12D3KooWPeer", requires: { labels: ["gpu"], resources: { cpu: 4 } } });
    for (const bad of ["remote:auto[gpu", "remote:", "remote:[gpu]", "local:auto", "remote:auto[gpu]x", "remote:a b", "auto"]) {
      const err = thrown(() => parseRemoteStep(bad));
      expect(err.message).toBe(`route: expected remote:<auto|peer-id>[requirement,...], got ${JSON.stringify(bad)}`);
    }
    expect(thrown(() => parseRemoteStep("remote:auto[gpu,cpu>=x]")).message).toBe('requires: item 2 "cpu>=x": amount must be a number >= 0');
    expect(thrown(() => parseRemoteStep(`remote:${"p".repeat(300)}`)).field).toBe("route");
  });

  it("reads back what it writes", () => {
    const name = fc.stringMatching(/^[A-Za-z0-9._-]{1,12}$/).filter((n) => n !== "__proto__");
    const amount = fc.oneof(fc.integer({ min: 0, max: 1_000_000 }), fc.double({ min: 0, max: 1e30, noNaN: true, noDefaultInfinity: true }).map((v) => v + 0));
    fc.assert(
      fc.property(fc.uniqueArray(name, { maxLength: 5 }), fc.dictionary(name, amount, { maxKeys: 5 }), (labels, resources) => {
        const req: TaskRequirements = {};
        if (labels.length > 0) req.labels = labels;
        if (Object.keys(resources).length > 0) req.resources = resources;
        fc.pre(labels.length + Object.keys(resources).length > 0);
        expect(parseRequirements(formatRequirements(req))).toEqual(req);
      }),
    );
  });
});
