import type { DeviceIdentity } from "../../identity/index.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { defaultDeviceName, deviceNameSchema, signDeviceName } from "../../src/security/device-names.js";
import { parseInput } from "../../src/contract/parse-input.js";
import type { Membership } from "../mesh/membership.js";
import type { NodeSecurity } from "./node-security.js";

/** What naming devices needs of the node. */
export interface DeviceNamingDeps {
  membership: Membership;
  security: NodeSecurity;
  identity: DeviceIdentity;
}

/**
 * Signs `name` for `device` and publishes it to the mesh, where every member
 * shows it. Refused with the reason: outside a mesh, for a device the mesh does
 * not know, by a device that is neither the one named nor an admin (every
 * receiver would refuse it too), a name another device has, and a rename that
 * changes nothing.
 */
export async function renameDevice(deps: DeviceNamingDeps, device: string, name: string): Promise<{ device: string; name: string; previous?: string }> {
  const { membership, security, identity } = deps;
  const valid = parseInput(deviceNameSchema, name, "name");
  const meshId = membership.meshId;
  if (meshId === undefined) throw new CoderClawError("INVALID_INPUT", "this node is not in a mesh: names are signed into the mesh's records, so create or join one first");
  if (!membership.devices().some((d) => d.deviceId === device)) throw new CoderClawError("NOT_FOUND", `device ${device} is not a device of this mesh`);
  if (device !== identity.peerId && !security.current.grants.isAdmin(identity.peerId)) {
    throw new CoderClawError("PERMISSION_DENIED", `only device ${device} itself or an admin may rename it, and this device is neither (an admin runs: coderclaw devices rename ${device} ${valid})`);
  }
  const names = security.deviceNames();
  const previous = names.get(device);
  if (previous === valid) throw new CoderClawError("INVALID_INPUT", `device ${device} is already named ${valid}`, { field: "name" });
  const holder = [...names].find(([id, n]) => id !== device && n.toLowerCase() === valid.toLowerCase())?.[0];
  if (holder !== undefined) throw new CoderClawError("INVALID_INPUT", `the name ${valid} is taken by device ${holder}`, { field: "name" });
  await membership.add([signDeviceName(identity, { device, meshId, name: valid })]);
  return { device, name: valid, ...(previous !== undefined && { previous }) };
}

/**
 * Gives this device its hostname as a name once it is a member of a mesh and has
 * none. The returned function is called on every membership change; calls while
 * one is publishing do nothing, as that one names the device.
 */
export function defaultNaming(deps: DeviceNamingDeps, onError: (err: Error) => void): () => void {
  let running = false;
  return () => {
    const { membership, security, identity } = deps;
    const meshId = membership.meshId;
    if (running || meshId === undefined || !membership.isMember(identity.peerId)) return;
    const names = security.deviceNames();
    if (names.has(identity.peerId)) return;
    const name = defaultDeviceName(identity.peerId, new Set([...names.values()].map((n) => n.toLowerCase())));
    if (name === undefined) return;
    running = true;
    membership
      .add([signDeviceName(identity, { device: identity.peerId, meshId, name })])
      .catch((err: unknown) => onError(err instanceof Error ? err : new Error(String(err))))
      .finally(() => (running = false));
  };
}
