import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, request, startServer } from "./helpers.js";

const DEVICE = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";

/** The edge of the dashboard's admin routes: what is refused never reaches the node's admin calls. */
describe("mesh, device and invite routes refuse bad input at the edge", () => {
  let engine: Engine;
  let server: HttpServer;
  const calls: Array<[string, unknown]> = [];
  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter, {
      admin: async (method, params) => {
        calls.push([method, params]);
        return method === "mesh.invite" ? { invite: "ccinv1.x", expiresAt: 0 } : {};
      },
    });
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });
  const post = (path: string, body: unknown) => request(server.url, "POST", path, { token: TOKENS.admin, body: JSON.stringify(body) });

  it.each([
    [`/v1/devices/not-a-peer-id!/revoke`, { reason: "lost" }, /id.*PeerId/],
    [`/v1/devices/${DEVICE}/revoke`, { reason: "   " }, /reason/],
    [`/v1/devices/${DEVICE}/revoke`, { reason: "x".repeat(1025) }, /reason/],
    [`/v1/devices/${DEVICE}/revoke`, { reason: "lost", extra: 1 }, /extra/],
    [`/v1/devices/${DEVICE}/trust`, { level: "admin" }, /level/],
    ["/v1/invites", { level: "trusted", ttlMs: 30 * 24 * 3600 * 1000 }, /ttlMs/],
    ["/v1/invites", { level: "founder" }, /level/],
  ])("POST %s %j is refused (400) naming what was wrong", async (path, body, says) => {
    calls.length = 0;
    const answer = await post(path, body);
    expect(answer.status).toBe(400);
    expect(JSON.stringify(answer.body)).toMatch(says);
    expect(calls).toEqual([]);
  });

  it("passes a valid write to the node with the parsed parameters only", async () => {
    calls.length = 0;
    expect((await post(`/v1/devices/${DEVICE}/revoke`, { reason: "laptop lost" })).status).toBe(200);
    const invite = await post("/v1/invites", { level: "verified" });
    expect(invite).toMatchObject({ status: 201, body: { invite: "ccinv1.x", level: "verified" } });
    expect(calls).toEqual([["devices.revoke", { deviceId: DEVICE, reason: "laptop lost" }], ["mesh.invite", { level: "verified", ttlMs: 15 * 60_000 }]]);
  });

  it("a developer reads the mesh but may not change trust", async () => {
    calls.length = 0;
    expect((await request(server.url, "GET", "/v1/devices", { token: TOKENS.alice })).status).toBe(200);
    expect((await request(server.url, "POST", `/v1/devices/${DEVICE}/revoke`, { token: TOKENS.alice, body: JSON.stringify({ reason: "mine" }) })).status).toBe(403);
    expect(calls.map(([m]) => m)).toEqual(["devices.list"]);
  });
});
