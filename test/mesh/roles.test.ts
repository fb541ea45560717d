import { afterEach, describe, expect, it } from "vitest";
import { issueRevocation } from "../../identity/index.js";
import { runAdmin } from "../../node/node-admin.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const rolesOn = (node: CoderClawNode, subject: string): string[] => [...node.security.current.grants.rolesOf(subject)].sort();

describe("roles grant and revoke across two nodes", () => {
  it("an admin grants and revokes; the other node honours both; a non-admin, an unknown role, a role not held and the founder's admin are refused and audited", async () => {
    const started = await startNodes(2);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b] = started.nodes as [CoderClawNode, CoderClawNode];
    await eventually(() => rolesOn(b, b.peerId).includes("developer"), 15_000, "b's invite grant in force on b");

    // b is no admin: its grant is refused before anything is signed, and the refusal is on record.
    await expect(runAdmin(b, "roles.grant", { subject: "carol", roles: ["readonly"] })).rejects.toThrow(/only an admin of the mesh grants and revokes roles/);
    expect((await b.security.current.getAuditLog({ action: "grant.add", result: "denied" })).some((e) => e.body.resource === "carol")).toBe(true);
    await expect(runAdmin(a, "roles.grant", { subject: b.peerId, roles: ["wizard"] })).rejects.toThrow(/unknown role wizard/);
    await expect(runAdmin(a, "roles.grant", { subject: b.peerId, roles: ["developer"] })).rejects.toThrow(/holds developer already/);

    // A member that is no admin revokes a grant it did not issue: the revocation replicates and changes nothing anywhere.
    await runAdmin(a, "roles.grant", { subject: "dave", roles: ["readonly"] });
    await eventually(() => rolesOn(b, "dave").includes("readonly"), 15_000, "dave's grant in force on b");
    const [daves] = a.security.current.grants.grantsOf("dave");
    const forged = issueRevocation(b.identity, daves!.id, "not mine to revoke");
    await b.membership.add([forged]);
    await eventually(async () => (await a.security.current.getAuditLog({ action: "grant.revoke", result: "denied" })).some((e) => /may not revoke/.test(e.body.reason ?? "")), 15_000, "the forged revocation refused on a");
    for (const node of [a, b]) expect(rolesOn(node, "dave")).toEqual(["readonly"]);

    await runAdmin(a, "roles.grant", { subject: b.peerId, roles: ["admin", "ci"] });
    await eventually(() => b.security.current.grants.isAdmin(b.peerId), 15_000, "b an admin on b");
    // Now b may grant.
    await runAdmin(b, "roles.grant", { subject: "carol", roles: ["readonly"] });
    await eventually(() => rolesOn(a, "carol").includes("readonly"), 15_000, "carol's grant in force on a");
    const listed = (await runAdmin(a, "roles.list", {})) as Array<{ subject: string; roles: string[]; founder: boolean }>;
    expect(listed).toEqual(expect.arrayContaining([{ subject: a.peerId, roles: ["admin"], admin: true, founder: true }, { subject: "carol", roles: ["readonly"], admin: false, founder: false }]));

    // Revoking admin leaves what the same grant gave besides it (ci), and the invite's developer.
    await expect(runAdmin(b, "roles.revoke", { subject: a.peerId, role: "admin" })).rejects.toThrow(/founded the mesh/);
    await expect(runAdmin(a, "roles.revoke", { subject: b.peerId, role: "readonly" })).rejects.toThrow(/holds no grant of readonly/);
    const revoked = (await runAdmin(a, "roles.revoke", { subject: b.peerId, role: "admin", reason: "rotation" })) as { revoked: string[]; regranted?: string };
    expect(revoked.revoked).toHaveLength(1);
    expect(revoked.regranted).toBeDefined();
    for (const node of [a, b]) await eventually(() => !node.security.current.grants.isAdmin(b.peerId), 15_000, "b no longer an admin");
    expect(rolesOn(b, b.peerId)).toEqual(["ci", "developer"]);
    await expect(runAdmin(b, "roles.grant", { subject: "dave", roles: ["readonly"] })).rejects.toThrow(/only an admin/);
    // What b granted while it was an admin lapses with its admin role (grants count while their issuer is an admin).
    await eventually(() => rolesOn(a, "carol").length === 0, 15_000, "carol's grant from b lapses");
    expect((await a.security.current.getAuditLog({ action: "grant.revoke", result: "allowed" })).length).toBeGreaterThan(0);
  }, 90_000);
});
