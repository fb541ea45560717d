import { afterEach, describe, expect, it } from "vitest";
import { runAdmin } from "../../node/node-admin.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { signDeviceName } from "../../src/security/device-names.js";
import { eventually, formMesh, startNodes } from "../helpers/mesh.js";

const cleanups: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const nameOn = (node: CoderClawNode, device: string): string | undefined => node.security.deviceNames().get(device);

describe("device names across two nodes", () => {
  it("each device takes its hostname, renames itself or is renamed by an admin, and every member shows it; a member renaming another is refused at every receiver", async () => {
    const started = await startNodes(2);
    cleanups.push(started.stop);
    await formMesh(started.nodes);
    const [a, b] = started.nodes as [CoderClawNode, CoderClawNode];

    // Both named by default, and each sees the other's name.
    await eventually(() => nameOn(a, b.peerId) !== undefined && nameOn(b, a.peerId) !== undefined, 15_000, "default names replicated");
    expect(nameOn(a, a.peerId)).not.toBe(nameOn(a, b.peerId));

    await runAdmin(b, "devices.rename", { deviceId: b.peerId, name: "laptop" });
    await eventually(() => nameOn(a, b.peerId) === "laptop", 15_000, "b's own rename seen on a");
    const listed = (await runAdmin(a, "devices.list", {})) as Array<{ deviceId: string; name?: string }>;
    expect(listed.find((d) => d.deviceId === b.peerId)?.name).toBe("laptop");

    // b is no admin: renaming a is refused before anything is signed, with the command an admin would run, and on record.
    await expect(runAdmin(b, "devices.rename", { deviceId: a.peerId, name: "pwned" })).rejects.toThrow(new RegExp(`only device ${a.peerId} itself or an admin may rename it`));
    expect((await b.security.current.getAuditLog({ action: "device.rename", result: "denied" })).some((e) => e.body.resource === a.peerId)).toBe(true);

    // b signs one anyway and publishes it: it replicates, is refused and audited on a, and names nothing anywhere.
    const before = nameOn(a, a.peerId);
    await b.membership.add([signDeviceName(b.identity, { device: a.peerId, meshId: b.membership.meshId!, name: "pwned", issuedAt: Date.now() + 60_000 })]);
    await eventually(async () => (await a.security.current.getAuditLog({ action: "device.rename", result: "denied" })).some((e) => /may not name device/.test(e.body.reason ?? "") && e.body.userId === b.peerId), 15_000, "the forged rename refused on a");
    for (const node of [a, b]) expect(nameOn(node, a.peerId)).toBe(before);

    // The admin renames b; a name another device holds, and one that changes nothing, are refused.
    await runAdmin(a, "devices.rename", { deviceId: b.peerId, name: "desk" });
    await eventually(() => nameOn(b, b.peerId) === "desk", 15_000, "a's rename of b seen on b");
    await expect(runAdmin(a, "devices.rename", { deviceId: a.peerId, name: "DESK" })).rejects.toThrow(new RegExp(`the name DESK is taken by device ${b.peerId}`));
    await expect(runAdmin(a, "devices.rename", { deviceId: b.peerId, name: "desk" })).rejects.toThrow(/already named desk/);
    await expect(runAdmin(a, "devices.rename", { deviceId: b.peerId, name: "no spaces" })).rejects.toThrow(/a device name is 1-63 letters/);
    await expect(runAdmin(a, "devices.rename", { deviceId: b.peerId, name: "Local" })).rejects.toThrow(/cannot be auto or local/);
  }, 90_000);
});
