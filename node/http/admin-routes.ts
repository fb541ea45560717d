import type { FastifyInstance, FastifyRequest } from "fastify";
import { z } from "zod";
import { parseInput } from "../../src/contract/parse-input.js";
import type { HttpResource } from "./server.js";

/**
 * A node's administrative calls (the control socket's), run on behalf of an HTTP
 * caller that the route has already authorised. The node validates `params` again.
 */
export type HttpNodeAdmin = (method: "node.id" | "node.peers" | "node.doctor" | "devices.list" | "devices.revoke" | "devices.trust" | "mesh.invite" | "audit.verify", params?: unknown) => Promise<unknown>;

/** What the admin routes need of the server they are added to. */
export interface AdminRouteDeps {
  admin: HttpNodeAdmin;
  /** Refuses (throws) an action the caller may not take; `admin:all` is audited. */
  check: (request: FastifyRequest, action: "task:read" | "admin:all", resource: { type: "runtime" } | Extract<HttpResource, { type: "admin" }>) => Promise<void>;
}

const DeviceIdSchema = z.string().min(10).max(128).regex(/^[1-9A-HJ-NP-Za-km-z]+$/, "must be a device id (a PeerId)");
const LevelSchema = z.enum(["verified", "trusted"]);
/** Body of `POST /v1/devices/:id/revoke`. */
export const RevokeSchema = z.strictObject({ reason: z.string().trim().min(1, "say why the device is revoked").max(1024) });
/** Body of `POST /v1/devices/:id/trust`. */
export const TrustSchema = z.strictObject({ level: LevelSchema });
/** Body of `POST /v1/invites`. An invite from the dashboard lives at most a day: long enough to carry to the other machine. */
export const InviteSchema = z.strictObject({ level: LevelSchema, ttlMs: z.number().int().min(60_000).max(24 * 3600 * 1000).default(15 * 60_000) });

/**
 * Mesh, device and audit-chain routes for the dashboard. Reading the mesh needs
 * what reading the runtime needs; every change of trust, an invite and chain
 * verification need `admin:all` (audited under the call's own action, with the
 * HTTP caller as its user), so a read-only session is refused before the node is asked.
 */
export function registerAdminRoutes(api: FastifyInstance, deps: AdminRouteDeps): void {
  const { admin, check } = deps;
  const runtime = { type: "runtime" } as const;

  api.get("/mesh", async (request) => {
    await check(request, "task:read", runtime);
    const [self, doctor, members] = await Promise.all([admin("node.id"), admin("node.doctor"), admin("node.peers")]);
    const { reachability, relaysReserved, relayServing, portMapping, hints } = doctor as Record<string, unknown>;
    return { self, reachability, relaysReserved, relayServing, portMapping, hints, members };
  });

  api.get("/devices", async (request) => {
    await check(request, "task:read", runtime);
    return { devices: await admin("devices.list") };
  });

  api.post<{ Params: { id: string } }>("/devices/:id/revoke", async (request) => {
    const deviceId = parseInput(DeviceIdSchema, request.params.id, "id");
    const { reason } = parseInput(RevokeSchema, request.body ?? {});
    await check(request, "admin:all", { type: "admin", action: "trust.revoke" });
    return admin("devices.revoke", { deviceId, reason });
  });

  api.post<{ Params: { id: string } }>("/devices/:id/trust", async (request) => {
    const deviceId = parseInput(DeviceIdSchema, request.params.id, "id");
    const { level } = parseInput(TrustSchema, request.body ?? {});
    await check(request, "admin:all", { type: "admin", action: "trust.certify" });
    return admin("devices.trust", { deviceId, level });
  });

  api.post("/invites", async (request, reply) => {
    const { level, ttlMs } = parseInput(InviteSchema, request.body ?? {});
    await check(request, "admin:all", { type: "admin", action: "mesh.invite" });
    const { invite, expiresAt } = (await admin("mesh.invite", { level, ttlMs })) as { invite: string; expiresAt: number };
    return reply.code(201).send({ invite, level, expiresAt: new Date(expiresAt).toISOString() });
  });

  api.get("/audit/verify", async (request) => {
    await check(request, "admin:all", { type: "admin", action: "audit.verify" });
    return admin("audit.verify");
  });
}
