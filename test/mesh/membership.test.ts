import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as A from "@automerge/automerge";
import { afterEach, describe, expect, it } from "vitest";
import { createMeshGenesis, deviceIdentityFromSeed, issueTrustCert, type SignedStatement } from "../../identity/index.js";
import { Membership, MESH_STATEMENTS_DOC } from "../../node/mesh/membership.js";
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
  it("sees every statement of two documents created apart and merged, whichever `s` map Automerge shows", async () => {
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
    await store.update<StatementsDoc>(MESH_STATEMENTS_DOC, () => merged);

    const membership = await Membership.open({ store, identity: joiner!, pinnedMeshId: () => meshId });
    expect(membership.levelOf(joiner!.peerId)).toBe("trusted");
    expect(membership.levelOf(later!.peerId)).toBe("trusted");
    // Adding what is already held in either map changes nothing.
    const heads = await store.heads(MESH_STATEMENTS_DOC);
    await membership.add([laterCert]);
    expect(await store.heads(MESH_STATEMENTS_DOC)).toEqual(heads);
    membership.close();
    await store.close();
    await db.close();
  });
});
