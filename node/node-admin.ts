import { z } from "zod";
import { CoderClawError, InvalidInputError } from "../src/contract/errors.js";
import { parseInput } from "../src/contract/parse-input.js";
import { parseRepoPolicy, parseTeamPolicy } from "../src/security/policy-file.js";
import type { CoderClawNode } from "./create-node.js";
import { isWorkflowMethod, runWorkflowAdmin } from "./workflows/workflow-admin.js";
import { isApprovalMethod, runApprovalAdmin } from "./workflows/approval-admin.js";
import { isRegistryMethod, runRegistryAdmin } from "./registry/registry-admin.js";
import { meshAgentListing } from "./registry/published-agents.js";
import { grantTaskResult } from "./workspaces/task-result.js";
import { grantRoles, revokeRole, type RoleAdminDeps } from "./security/role-admin.js";
import { renameDevice } from "./security/device-naming.js";
import { DEVICE_ID_PATTERN, decodeStatement, fingerprintOfPublicKey, publicKeyOfDeviceId, toBase64Url } from "../identity/index.js";
import { grantTokenBytes } from "./workspaces/executor-grant.js";
import type { ResultSources } from "./workspaces/code-workspaces.js";
import { DIGEST_PATTERN } from "../src/workspace/manifest.js";
import type { RoleGrant } from "../src/security/grants.js";

/** Administrative calls on a running node, served over the control socket. */
export const ADMIN_METHODS = ["session.create", "session.list", "session.revoke", "audit.query", "audit.verify", "node.id", "node.peers", "node.ping", "node.doctor", "node.dial", "mesh.create", "mesh.invite", "mesh.join", "mesh.status", "devices.list", "devices.trust", "devices.revoke", "devices.rename", "policy.sign", "task.changes", "task.blobs", "task.grant", "task.clean", "roles.list", "roles.grant", "roles.revoke"] as const;
export type AdminMethod = (typeof ADMIN_METHODS)[number];

const levelSchema = z.enum(["verified", "trusted"]);
const roleName = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, "must be a role name like 'developer'");
const deviceSchema = z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, "must be a device id (a PeerId)");
/** A device id exactly (what a grant names), not only its alphabet. */
const deviceIdSchema = z.string().regex(DEVICE_ID_PATTERN, "must be a device id (a PeerId such as 12D3KooW...)");
const isoDate = z.iso.datetime({ offset: true }).transform((v) => new Date(v));
const schemas = {
  "session.create": z.strictObject({
    userId: z.string().min(1).max(256).optional(),
    roles: z.array(z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/)).min(1).max(16).optional(),
    ttlMs: z.number().int().min(60_000).max(30 * 24 * 3600 * 1000).optional(),
    readOnly: z.boolean().optional(),
  }),
  "session.list": z.strictObject({}).optional(),
  "session.revoke": z.strictObject({ sessionId: z.uuid(), reason: z.string().max(256).optional() }),
  "audit.query": z.strictObject({
    userId: z.string().min(1).max(256).optional(),
    action: z.string().min(1).max(128).optional(),
    result: z.enum(["allowed", "denied", "error"]).optional(),
    startDate: isoDate.optional(),
    endDate: isoDate.optional(),
    limit: z.number().int().min(1).max(100_000).optional(),
  }),
  "audit.verify": z.strictObject({}).optional(),
  "node.id": z.strictObject({}).optional(),
  "node.peers": z.strictObject({}).optional(),
  "node.doctor": z.strictObject({}).optional(),
  "node.ping": z.strictObject({ peer: deviceSchema, count: z.number().int().min(1).max(100).optional() }),
  "node.dial": z.strictObject({ addr: z.string().min(8).max(512).regex(/\/p2p\//, "must end with /p2p/<peer id>") }),
  "mesh.create": z.strictObject({ name: z.string().min(1).max(128) }),
  "mesh.invite": z.strictObject({ level: levelSchema, ttlMs: z.number().int().min(1000).max(7 * 24 * 3600 * 1000) }),
  "mesh.join": z.strictObject({ invite: z.string().min(10).max(4096) }),
  "mesh.status": z.strictObject({}).optional(),
  "devices.list": z.strictObject({}).optional(),
  "devices.trust": z.strictObject({ deviceId: deviceSchema, level: levelSchema }),
  "devices.revoke": z.strictObject({ deviceId: deviceSchema, reason: z.string().max(1024) }),
  "devices.rename": z.strictObject({ deviceId: deviceSchema, name: z.string().min(1).max(128) }),
  "task.changes": z.strictObject({ taskId: z.string().min(1).max(128), grant: z.string().max(4096).optional(), from: z.array(deviceIdSchema).min(1).max(16).optional() }),
  "task.blobs": z.strictObject({ taskId: z.string().min(1).max(128), digests: z.array(z.string().regex(DIGEST_PATTERN, "must be a blob digest (64 lowercase hex characters)")).min(1).max(4096), grant: z.string().max(4096).optional(), from: z.array(deviceIdSchema).min(1).max(16).optional() }),
  "task.grant": z.strictObject({ taskId: z.string().min(1).max(128), grantee: deviceIdSchema, ttlMs: z.number().int().min(1000).max(365 * 24 * 3600_000) }),
  "roles.list": z.strictObject({}).optional(),
  "roles.grant": z.strictObject({ subject: z.string().min(1).max(256), roles: z.array(roleName).min(1).max(16), ttlMs: z.number().int().min(60_000).max(366 * 24 * 3600_000).optional() }),
  "roles.revoke": z.strictObject({ subject: z.string().min(1).max(256), role: roleName, reason: z.string().max(256).optional() }),
  "task.clean": z.strictObject({ taskIds: z.array(z.uuid()).max(10_000).optional(), olderThanMs: z.number().int().min(0).max(10 * 365 * 24 * 3600_000).optional() }),
  "policy.sign": z.strictObject({ scope: z.enum(["repo", "team"]), text: z.string().min(1).max(256 * 1024), file: z.string().min(1).max(4096) }),
} satisfies Record<AdminMethod, z.ZodType>;

/** A `task.blobs` answer stops adding blobs once they come to this many bytes. */
const BLOBS_ANSWER_BYTES = 1024 * 1024;

/** True when `method` is one of {@link ADMIN_METHODS}. */
export function isAdminMethod(method: string): method is AdminMethod {
  return (ADMIN_METHODS as readonly string[]).includes(method);
}

/** Runs one administrative call against `node`; parameters are validated here, at the edge. */
export async function runAdmin(node: CoderClawNode, method: string, raw: unknown): Promise<unknown> {
  if (isWorkflowMethod(method)) return runWorkflowAdmin(node.workflows, method, raw);
  if (isApprovalMethod(method)) return runApprovalAdmin(node.approvals, node.taskApprovals, method, raw);
  if (isRegistryMethod(method)) return runRegistryAdmin(node.registry, () => meshAgentListing(node.publishedAgents, () => node.directory.members()), method, raw);
  if (!isAdminMethod(method)) throw new InvalidInputError(`unknown administrative call ${method}`, "method");
  const m = node.membership;
  switch (method) {
    case "task.changes": {
      // The files without their bytes: a line of the control socket is bounded, a result is not. The bytes follow, some blobs a call (task.blobs).
      const { taskId, grant, from } = parseInput(schemas[method], raw);
      const { result, files } = await node.changes.open(taskId, resultSources(grant, from));
      return { result, files };
    }
    case "task.blobs": {
      // Bytes travel as base64 in the control socket's JSON lines, which are bounded: the answer holds the first of `digests`
      // until they come to 1 MiB (a blob is at most 1 MiB, so a line stays under 3 MiB), and the caller asks again for the rest.
      const { taskId, digests, grant, from } = parseInput(schemas[method], raw);
      const opened = await node.changes.open(taskId, resultSources(grant, from));
      const blobs: string[] = [];
      let bytes = 0;
      for (const digest of digests) {
        if (bytes >= BLOBS_ANSWER_BYTES) break;
        const blob = await opened.read(digest);
        blobs.push(Buffer.from(blob).toString("base64"));
        bytes += blob.byteLength;
      }
      return { blobs };
    }
    case "task.grant": {
      const { taskId, grantee, ttlMs } = parseInput(schemas[method], raw);
      const expires = Date.now() + ttlMs;
      const { tree, grant } = await grantTaskResult(node.adapter, node.workspaces, taskId, grantee, expires);
      return { taskId, tree, grantee, expires: new Date(expires).toISOString(), grant: toBase64Url(grant) };
    }
    case "roles.list": {
      parseInput(schemas[method], raw);
      const grants = node.security.current.grants;
      const subjects = new Set([...m.devices().map((d) => d.deviceId), ...[...grants.statements()].map((b) => (decodeStatement(b).body as RoleGrant).subject)]);
      return [...subjects].sort().map((subject) => ({ subject, roles: [...grants.rolesOf(subject)].sort(), admin: grants.isAdmin(subject), founder: grants.isRootAdmin(subject) })).filter((r) => r.roles.length > 0);
    }
    case "roles.grant": {
      const { subject, roles, ttlMs } = parseInput(schemas[method], raw);
      const done = await refusalAudited(node, "grant.add", subject, () => grantRoles(roleAdmin(node), subject, roles, ttlMs === undefined ? undefined : Date.now() + ttlMs));
      return done;
    }
    case "roles.revoke": {
      const { subject, role, reason } = parseInput(schemas[method], raw);
      return refusalAudited(node, "grant.revoke", subject, () => revokeRole(roleAdmin(node), subject, role, reason ?? ""));
    }
    case "task.clean": {
      const { taskIds, olderThanMs } = parseInput(schemas[method], raw);
      // A result released here is fetched again from its holders when next asked for, not answered from what was opened.
      node.changes.forget();
      return node.workspaces.clean({ ...(taskIds !== undefined && { taskIds }), ...(olderThanMs !== undefined && { olderThanMs }) });
    }
    case "session.create": {
      const { userId, roles, ttlMs, readOnly } = parseInput(schemas[method], raw);
      // Sessions belong to this node's device: HTTP accepts only tokens opened here.
      const user = userId ?? node.peerId;
      // Without explicit roles, the session carries every role the user holds here.
      const held = roles ?? [...node.security.current.grants.rolesOf(user)];
      if (held.length === 0) throw new CoderClawError("PERMISSION_DENIED", `${user} holds no role on this node; an admin grants roles`);
      const session = await node.security.current.createSession(user, node.peerId, held, { ...(ttlMs !== undefined && { ttlMs }), ...(readOnly === true && { readOnly }) });
      return { id: session.id, token: session.token, userId: session.userId, roles: session.roles, readOnly: session.readOnly, expiresAt: new Date(session.expiresAt).toISOString() };
    }
    case "session.list":
      parseInput(schemas[method], raw);
      return node.security.current.sessions.list().map((s) => ({ ...s, issuedAt: new Date(s.issuedAt).toISOString(), expiresAt: new Date(s.expiresAt).toISOString() }));
    case "session.revoke": {
      const { sessionId, reason } = parseInput(schemas[method], raw);
      const state = node.security.current.sessions.list().find((s) => s.id === sessionId)?.state;
      if (state === undefined) throw new CoderClawError("NOT_FOUND", `no session ${sessionId} on this node (expired ones are forgotten a day after they expire)`);
      // Revoking what is already over would change nothing: say so rather than answer "revoked".
      if (state !== "active") throw new CoderClawError("INVALID_INPUT", `session ${sessionId} is already ${state}`, { field: "sessionId" });
      await node.security.current.revokeSession(sessionId, { userId: node.peerId, deviceId: node.peerId }, reason || "revoked by the node's owner");
      return { revoked: sessionId };
    }
    case "audit.query": {
      const q = parseInput(schemas[method], raw);
      const filter = Object.fromEntries(Object.entries(q).filter(([, v]) => v !== undefined));
      return node.security.current.getAuditLog(filter);
    }
    case "audit.verify":
      parseInput(schemas[method], raw);
      return node.security.current.verifyAudit();
    case "node.id":
      parseInput(schemas[method], raw);
      return { deviceId: node.peerId, fingerprint: node.identity.fingerprint, addrs: node.multiaddrs(), portMapping: node.portMapping(), meshId: m.meshId ?? null, level: m.levelOf(node.peerId) };
    case "node.peers": {
      parseInput(schemas[method], raw);
      const names = node.security.deviceNames();
      return (await node.peers()).map((p) => ({ ...p, ...(names.has(p.peerId) && { name: names.get(p.peerId) }) }));
    }
    case "node.doctor":
      parseInput(schemas[method], raw);
      return node.doctor();
    case "node.ping": {
      const { peer, count } = parseInput(schemas[method], raw);
      return node.ping(peer, count);
    }
    case "node.dial":
      await node.dial(parseInput(schemas[method], raw).addr);
      return { connected: true };
    case "mesh.create":
      return { meshId: await node.createMesh(parseInput(schemas[method], raw).name) };
    case "mesh.invite": {
      const { level, ttlMs } = parseInput(schemas[method], raw);
      return node.pairing.invite(level, ttlMs);
    }
    case "mesh.join":
      return node.pairing.join(parseInput(schemas[method], raw).invite);
    case "mesh.status":
      parseInput(schemas[method], raw);
      return { meshId: m.meshId ?? null, name: m.meshName ?? null, devices: m.devices().length, self: m.levelOf(node.peerId) };
    case "devices.list": {
      parseInput(schemas[method], raw);
      const connected = new Set(node.libp2p.getConnections().map((c) => c.remotePeer.toString()));
      const names = node.security.deviceNames();
      return m.devices().map((d) => {
        const self = d.deviceId === node.peerId;
        const last = self ? Date.now() : node.lastSeen(d.deviceId);
        const code = node.pairing.comparisonCodeOf(d.deviceId);
        const roles = [...node.security.current.grants.rolesOf(d.deviceId)];
        const key = publicKeyOfDeviceId(d.deviceId);
        return { ...d, ...(names.has(d.deviceId) && { name: names.get(d.deviceId) }), ...(key !== undefined && { fingerprint: fingerprintOfPublicKey(key) }), self, roles, connected: self || connected.has(d.deviceId), ...(last !== undefined && { lastSeen: new Date(last).toISOString() }), ...(code !== undefined && { comparisonCode: code }) };
      });
    }
    case "devices.trust": {
      const { deviceId, level } = parseInput(schemas[method], raw);
      const cert = await refusalAudited(node, "trust.certify", deviceId, () => m.certify(deviceId, level));
      await node.security.record({ action: "trust.certify", userId: node.peerId, deviceId: node.peerId, resource: deviceId, result: "allowed", reason: `level ${level}` });
      return { certificate: cert.id };
    }
    case "devices.revoke": {
      const { deviceId, reason } = parseInput(schemas[method], raw);
      if (deviceId === node.peerId) throw new CoderClawError("INVALID_INPUT", "a node cannot revoke itself from its own CLI; revoke it from another member", { field: "deviceId" });
      const rev = await refusalAudited(node, "trust.revoke", deviceId, () => m.revoke(deviceId, reason));
      await node.security.record({ action: "trust.revoke", userId: node.peerId, deviceId: node.peerId, resource: deviceId, result: "allowed", reason });
      return { revocation: rev.id };
    }
    case "devices.rename": {
      const { deviceId, name } = parseInput(schemas[method], raw);
      const done = await refusalAudited(node, "device.rename", deviceId, () => renameDevice({ membership: m, security: node.security, identity: node.identity }, deviceId, name));
      return done;
    }
    case "policy.sign": {
      const { scope, text, file } = parseInput(schemas[method], raw);
      // A policy that does not parse would be refused by every node that receives it: say so here, naming file, line and key.
      if (scope === "repo") parseRepoPolicy(text, file);
      else parseTeamPolicy(text, file);
      if (!node.security.current.grants.isAdmin(node.peerId)) throw new CoderClawError("PERMISSION_DENIED", "only an admin's signed policy takes effect, and this device is not an admin of its mesh");
      await node.security.signPolicy(scope, text);
      return { scope, signedBy: node.peerId };
    }
  }
}

/** What granting and revoking roles needs of the node, as it is now. */
function roleAdmin(node: CoderClawNode): RoleAdminDeps {
  return { signer: node.identity, meshId: node.membership.meshId, security: node.security.current, publish: (statements) => node.membership.add(statements) };
}

/** Runs a trust change; a refusal is audited `denied` with its reason before it reaches the caller. */
async function refusalAudited<T>(node: CoderClawNode, action: string, resource: string, change: () => Promise<T>): Promise<T> {
  try {
    return await change();
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    await node.security.record({ action, userId: node.peerId, deviceId: node.peerId, resource, result: "denied", reason });
    throw err;
  }
}

/** Where the node looks for a result it does not hold, from an administrative call's `grant` (a token) and `from` (members). */
function resultSources(grant: string | undefined, from: string[] | undefined): Omit<ResultSources, "owner"> {
  return { ...(grant !== undefined && { grant: grantTokenBytes(grant, "grant") }), ...(from !== undefined && { holders: from }) };
}
