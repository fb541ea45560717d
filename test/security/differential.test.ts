import { randomBytes } from "node:crypto";
import { join } from "node:path";
import fc from "fast-check";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { decodeStatement } from "../../identity/index.js";
import { ControlClientAdapter } from "../../node/control/control-client.js";
import { startNodeControl } from "../../node/control/node-control.js";
import type { ControlServer } from "../../node/control/control-server.js";
import type { CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskSubmitRequest } from "../../src/contract/types.js";
import { signPolicy as signPolicyStatement, signRoleGrant } from "../../src/security/index.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { eventually, startNodes } from "../helpers/mesh.js";

type Decision = "allow" | "deny";
type Entry = "http" | "control" | "mesh";

/** What a refusal looks like: a decision against the caller, or (`cutOff`: a revoked device on the mesh) no way in at all. */
async function decisionOf(run: () => Promise<unknown>, cutOff = false): Promise<Decision> {
  try {
    await run();
    return "allow";
  } catch (err) {
    if (err instanceof CoderClawError && (cutOff || err.code === "PERMISSION_DENIED" || err.code === "UNAUTHENTICATED")) return "deny";
    throw err;
  }
}

/** One subject's three ways in: HTTP on its node (a session of its own), its node's control socket, and the mesh to `executor`. */
interface Subject {
  name: string;
  node: CoderClawNode;
  executor: CoderClawNode;
  http: HTTPTransportAdapter;
  httpUrl: string;
  control: ControlClientAdapter;
}

/**
 * The same requests through HTTP, the control socket and the mesh, from every
 * kind of subject, must meet the same decision: all three call
 * SecurityService.authorizeTask on the same evidence (the subject's signed
 * grants, its device's trust, the admin-signed policies).
 */
describe("one decision for every entry point", () => {
  let stop: () => Promise<void>;
  let founder: CoderClawNode, dev: CoderClawNode, ci: CoderClawNode, revoked: CoderClawNode;
  const servers: Array<HttpServer | ControlServer> = [];
  const clients: Array<{ close(): Promise<void> }> = [];
  const subjects: Subject[] = [];

  /**
   * Signed statements reach every member by the mesh's statement replication;
   * here the founder's are handed over directly, so the decisions under test
   * depend on nothing else.
   */
  const share = async (): Promise<void> => {
    for (const n of [dev, ci, revoked]) await n.membership.add(founder.membership.statements());
  };

  /** A repository policy signed by the founder (an admin), offered to every node's security service as replication would. */
  const signPolicy = async (text: string): Promise<void> => {
    const policy = signPolicyStatement(founder.identity, { meshId: founder.membership.meshId!, scope: "repo", text });
    for (const n of [founder, dev, ci, revoked]) expect((await n.security.current.applySignedPolicy(policy)).status).toBe("accepted");
  };

  beforeAll(async () => {
    const mesh = await startNodes(4, () => ({ agents: [createShellAgent()] }));
    stop = mesh.stop;
    [founder, dev, ci, revoked] = mesh.nodes as [CoderClawNode, CoderClawNode, CoderClawNode, CoderClawNode];
    await founder.createMesh("differential");
    for (const [n, level] of [[dev, "trusted"], [ci, "verified"], [revoked, "trusted"]] as const) {
      const { invite } = await founder.pairing.invite(level, 60_000);
      await n.pairing.join(invite);
    }
    for (const x of mesh.nodes) for (const y of mesh.nodes) if (x !== y) await x.dial(y.multiaddrs()[0]!).catch(() => undefined);
    // Every node holds the founder's grants (developer, ci, developer) and the default mesh policy.
    await share();
    for (const n of mesh.nodes) await eventually(() => [dev, ci, revoked].every((d) => n.security.current.grants.rolesOf(d.peerId).size > 0), 15_000, "grants everywhere");
    for (const [name, node, executor] of [["admin", founder, dev], ["developer", dev, founder], ["ci", ci, founder], ["revoked", revoked, founder]] as const) {
      const service = node.security.current;
      const http = await createHttpServer({ adapter: node.adapter, ...securityHttpHooks(service, { deviceId: node.peerId }) });
      servers.push(http);
      const session = await service.createSession(node.peerId, node.peerId, [...service.grants.rolesOf(node.peerId)]);
      const token = randomBytes(16).toString("hex");
      const socketPath = join(mesh.homes[mesh.nodes.indexOf(node)]!, "control.sock");
      servers.push(await startNodeControl(node, { socketPath, token }));
      const control = await ControlClientAdapter.connect(socketPath, token);
      const client = new HTTPTransportAdapter({ baseUrl: http.url, token: session.token });
      clients.push(control);
      subjects.push({ name, node, executor, http: client, httpUrl: http.url, control });
    }
    // The founder revokes a device; the revocation reaches the device itself too (here, handed over directly).
    await founder.membership.revoke(revoked.peerId, "lost laptop");
    await share();
  }, 120_000);

  afterAll(async () => {
    for (const c of clients) await c.close().catch(() => undefined);
    for (const s of servers) await s.close().catch(() => undefined);
    await stop?.();
  });

  const submitThrough = (s: Subject, entry: Entry, request: TaskSubmitRequest): Promise<unknown> =>
    entry === "http" ? s.http.submitTask(request) : entry === "control" ? s.control.submitTask(request) : s.node.adapter.submitTask(request, { route: s.executor.peerId, waitForPeer: false });

  const decisions = async (request: TaskSubmitRequest): Promise<Record<string, Record<Entry, Decision>>> => {
    const out: Record<string, Record<Entry, Decision>> = {};
    for (const s of subjects) {
      out[s.name] = {
        http: await decisionOf(() => submitThrough(s, "http", request)),
        control: await decisionOf(() => submitThrough(s, "control", request)),
        // Members drop a revoked device's connections: its refusal on the mesh is that it cannot reach the executor (and may not wait for it).
        mesh: await decisionOf(() => submitThrough(s, "mesh", request), s.name === "revoked"),
      };
    }
    return out;
  };

  const same = (d: Decision): Record<Entry, Decision> => ({ http: d, control: d, mesh: d });
  const echo: TaskSubmitRequest = { description: "echo", input: "hello", agentId: "echo" };
  const shell: TaskSubmitRequest = { description: "shell", input: "echo ran", agentId: "shell" };

  it("under the default policy: shell-exec is dangerous, only the admin runs shell", async () => {
    expect(await decisions(echo)).toEqual({ admin: same("allow"), developer: same("allow"), ci: same("allow"), revoked: same("deny") });
    expect(await decisions(shell)).toEqual({ admin: same("allow"), developer: same("deny"), ci: same("deny"), revoked: same("deny") });
  }, 60_000);

  it("once an admin-signed policy lists developer for shell-exec, developers run shell everywhere, ci still nowhere", async () => {
    await signPolicy("remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\n");
    expect(await decisions(shell)).toEqual({ admin: same("allow"), developer: same("allow"), ci: same("deny"), revoked: same("deny") });
    expect(await decisions(echo)).toEqual({ admin: same("allow"), developer: same("allow"), ci: same("allow"), revoked: same("deny") });
  }, 60_000);

  it("cancels: the same decision too (ci has no task:cancel)", async () => {
    const cancels: Record<string, Record<Entry, Decision>> = {};
    for (const s of subjects.filter((x) => x.name !== "revoked")) {
      const row = {} as Record<Entry, Decision>;
      for (const entry of ["http", "control", "mesh"] as const) {
        const task = (await submitThrough(s, entry, { description: "long", input: "60000", agentId: "sleep" })) as { id: string };
        row[entry] = await decisionOf(() => (entry === "http" ? s.http.cancelTask(task.id) : entry === "control" ? s.control.cancelTask(task.id) : s.node.adapter.cancelTask(task.id)));
      }
      cancels[s.name] = row;
    }
    expect(cancels).toEqual({ admin: same("allow"), developer: same("allow"), ci: same("deny") });
  }, 60_000);

  it("property: over random roles, policies and agents, HTTP, the control socket and the mesh agree", async () => {
    // The ci device also holds a custom role `worker` whose permissions, and the skill and agent rules, vary per run.
    const grant = decodeStatement(signRoleGrant(founder.identity, { subject: ci.peerId, roles: ["worker"], meshId: founder.membership.meshId! }));
    await founder.membership.add([grant]);
    await share();
    await eventually(() => ci.security.current.grants.rolesOf(ci.peerId).has("worker") && founder.security.current.grants.rolesOf(ci.peerId).has("worker"), 15_000, "worker grant");
    const ciSubject = subjects.find((s) => s.name === "ci")!;
    // A session holds the roles it was opened with, cut to grants on each use: open one that includes worker.
    const session = await ci.security.current.createSession(ci.peerId, ci.peerId, ["ci", "worker"]);
    const http = new HTTPTransportAdapter({ baseUrl: ciSubject.httpUrl, token: session.token });
    const subject: Subject = { ...ciSubject, http };

    const permissions = fc.subarray(["task:submit", "agent:invoke", "skill:execute", "task:read", "admin:all"]);
    const roles = fc.subarray(["ci", "worker", "developer", "admin"]);
    const seen = new Set<Decision>();
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          inherits: fc.subarray(["readonly", "developer"]),
          permissions,
          shell: fc.option(fc.record({ dangerous: fc.boolean(), allowedRoles: fc.option(roles, { nil: undefined }) }), { nil: undefined }),
          echoRoles: fc.option(roles, { nil: undefined }),
          agent: fc.constantFrom("echo", "shell", "sleep"),
        }),
        async ({ inherits, permissions: extra, shell: shellRule, echoRoles, agent }) => {
          const policy = {
            remote: { allow: true },
            roles: { worker: { inherits, additionalPermissions: extra } },
            ...(shellRule && { skillPolicies: { "shell-exec": { dangerous: shellRule.dangerous, ...(shellRule.allowedRoles && { allowedRoles: shellRule.allowedRoles }) } } }),
            ...(echoRoles && { agentPolicies: { echo: { allowedRoles: echoRoles } } }),
          };
          await signPolicy(JSON.stringify(policy));
          const request: TaskSubmitRequest = { description: "prop", input: agent === "sleep" ? "1" : "true", agentId: agent };
          const row = {
            http: await decisionOf(() => submitThrough(subject, "http", request)),
            control: await decisionOf(() => submitThrough(subject, "control", request)),
            mesh: await decisionOf(() => submitThrough(subject, "mesh", request)),
          };
          seen.add(row.http);
          expect(row, JSON.stringify(policy)).toEqual(same(row.http));
        },
      ),
      { numRuns: 25, seed: 14 },
    );
    // The runs meet both outcomes, so agreement is not agreement on one answer.
    expect([...seen].sort()).toEqual(["allow", "deny"]);
  }, 240_000);
});
