import { describe, expect, it } from "vitest";
import type { SignedStatement } from "../../identity/index.js";
import { createCatalogue } from "../../node/registry/catalogue.js";
import { signPublication } from "../../src/registry/publication-statement.js";
import { parseRange } from "../../src/registry/version-range.js";
import type { AuditBody } from "../../src/security/index.js";
import { identity } from "../identity/helpers.js";

const meshId = `mesh-${"a".repeat(26)}`;
const [owner, other, admin] = [identity(1), identity(2), identity(3)];

function catalogueOf(statements: SignedStatement[]) {
  const audits: AuditBody[] = [];
  const catalogue = createCatalogue({
    set: { statements: () => statements, onAdded: () => () => undefined },
    meshId: () => meshId,
    // Both members hold registry:publish through a role; only `admin` is an admin.
    mayPublish: () => ({ allowed: true }),
    isAdmin: (device) => device === admin.peerId,
    record: async (body) => audits.push(body),
  });
  return { catalogue, audits };
}

const publish = (signer: typeof owner, kind: "skill" | "agent", version: string, tree: string) => signPublication(signer, { meshId, kind, name: "team/scanner", version, tree, size: 1, files: 1 });

describe("who may publish a new version of a name", () => {
  it("a member publishing a newer version of a name another member publishes is never taken: an update cannot swap in its bytes", () => {
    for (const kind of ["skill", "agent"] as const) {
      const mine = publish(owner, kind, "1.0.0", "1".repeat(64));
      const hijack = publish(other, kind, "1.0.1", "2".repeat(64));
      const { catalogue } = catalogueOf([mine, hijack]);
      expect(catalogue.list(kind).some((p) => p.publisher === other.peerId)).toBe(false);
      const found = catalogue.resolve(kind, "team/scanner", parseRange("*"));
      expect(found).not.toMatchObject({ tree: hijack.body.tree });
      expect(catalogue.refusal(hijack)).toMatch(/team\/scanner is published by more than one device/);
      // Every node decides alike whatever order the statements reached it in, and a replayed one changes nothing.
      for (const arrived of [[hijack, mine], [mine, hijack, hijack], [hijack, mine, mine]]) {
        const elsewhere = catalogueOf(arrived).catalogue;
        expect(elsewhere.list(kind)).toEqual(catalogue.list(kind));
        expect(elsewhere.resolve(kind, "team/scanner", parseRange("*"))).toEqual(found);
      }
    }
  });

  it("an admin may publish a new version of any name; a member may not publish over an admin's name", () => {
    const mine = publish(owner, "skill", "1.0.0", "1".repeat(64));
    const fixed = publish(admin, "skill", "1.0.1", "3".repeat(64));
    expect(catalogueOf([mine, fixed]).catalogue.resolve("skill", "team/scanner", parseRange("*"))).toMatchObject({ version: "1.0.1", publisher: admin.peerId });
    const hijack = publish(other, "skill", "1.0.2", "2".repeat(64));
    expect(catalogueOf([fixed, hijack]).catalogue.resolve("skill", "team/scanner", parseRange("*"))).toMatchObject({ version: "1.0.1", publisher: admin.peerId });
  });

  it("one member's versions of its own name are all taken", () => {
    const v1 = publish(owner, "skill", "1.0.0", "1".repeat(64));
    const v2 = publish(owner, "skill", "1.1.0", "4".repeat(64));
    const { catalogue } = catalogueOf([v1, v2]);
    expect(catalogue.list("skill").map((p) => p.version)).toEqual(["1.1.0", "1.0.0"]);
    expect(catalogue.refusal(v2)).toBeUndefined();
  });
});
