import type { DeviceIdentity } from "../../identity/index.js";
import type { NodeSecurity } from "./node-security.js";
import type { Membership } from "../mesh/membership.js";

/**
 * Found a mesh with `identity` as founder and admin, and sign its default
 * policy (members may send each other work). Returns the mesh id.
 */
export async function foundMesh(parts: { membership: Membership; security: NodeSecurity; identity: DeviceIdentity }, name: string): Promise<string> {
  const { membership, security, identity } = parts;
  const meshId = await membership.create(name);
  await security.refresh();
  await security.signDefaultPolicy();
  await security.record({ action: "mesh.create", userId: identity.peerId, deviceId: identity.peerId, resource: meshId, result: "allowed" });
  return meshId;
}
