import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as A from "@automerge/automerge";
import { afterEach, describe, expect, it } from "vitest";
import { createMeshGenesis, deviceIdentityFromSeed, issueTrustCert, type SignedStatement } from "../../identity/index.js";
import { Membership } from "../../node/mesh/membership.js";
import { importLegacyStatements } from "../../node/mesh/legacy-statements.js";
import { openDatabase } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

type StatementsDoc = { s: Record<string, Uint8Array> };

/** A statements document as one node writes it on its own: its own `s` map. */
function docOf(statements: readonly SignedStatement[], actor: string): A.Doc<StatementsDoc> {
  return A.change(A.from<StatementsDoc>({ s: {} }, { actor }), (d) => {
    for (const st of statements) d.s[st.id] = st.bytes;
  });
}

describe("membership", () => {
  it("carries a home's statements from the merged legacy document, whichever `s` map Automerge shows, into the set once", async () => {
    const dir = await mkdtemp(join(tmpdir(), "coderclaw-membership-"));
    dirs.push(dir);
    const db = await openDatabase(dir);
    const store = new LevelDocumentStore(db, { path: dir });
    const [founder, joiner, later] = [0, 1, 2].map(() => deviceIdentityFromSeed(randomBytes(32)));
    const genesis = createMeshGenesis(founder!, "home");
    const meshId = genesis.body.meshId;
    const joinerCert = issueTrustCert(founder!, meshId, joiner!.peerId, "trusted");
    const laterCert = issueTrustCert(founder!, meshId, later!.peerId, "trusted");
    // The joiner stored what pairing gave it; the founder then certified another device before the two documents met.
    // Actors chosen so that Automerge shows the joiner's map, which lacks the later certificate.
    const merged = A.merge(docOf([genesis, joinerCert], "ff".repeat(16)), docOf([genesis, joinerCert, laterCert], "01".repeat(16)));
    expect(A.getConflicts(merged, "s")).toBeDefined();
    expect(merged.s[laterCert.id]).toBeUndefined();
    // A member slipped garbage into the editable map: the import checks every item.
    await store.update<StatementsDoc>("mesh/statements", () => A.change(merged, (d) => void (d.s["ab".repeat(32)] = new Uint8Array([1, 2, 3]))));

    const membership = await Membership.openStored({ db, write: (ops) => store.write(ops), identity: joiner!, pinnedMeshId: () => meshId });
    const set = membership.set;
    expect(await importLegacyStatements(store, set)).toBe(3);
    expect(membership.levelOf(joiner!.peerId)).toBe("trusted");
    expect(membership.levelOf(later!.peerId)).toBe("trusted");
    expect(set.has("ab".repeat(32))).toBe(false);
    // Again: nothing new.
    expect(await importLegacyStatements(store, set)).toBe(0);
    const digest = set.digest();
    await membership.add([laterCert]);
    expect(set.digest()).toBe(digest);
    membership.close();
    await store.close();
    await db.close();
  });
});
