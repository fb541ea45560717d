import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { peerIdFromString } from "@libp2p/peer-id";
import { afterEach, describe, expect, it } from "vitest";
import { decodeStatement } from "../../identity/index.js";
import { createNode, type CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import { runAdmin } from "../../node/node-admin.js";
import { encodeCanonical, FramedChannel } from "../../protocols/framing/index.js";
import { createTaskCodec, submitSignedBytes, TASK_PROTOCOL, type SubmitEnvelope, type TaskMessage } from "../../protocols/task/index.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { hasCode } from "../../src/contract/errors.js";
import { signRoleGrant } from "../../src/security/index.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { eventually, startNodes } from "../helpers/mesh.js";

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const f of cleanup.reverse()) await f().catch(() => undefined);
  cleanup = [];
});

/** A founder `a` and members paired at the given levels, all dialled to each other, every node holding the founder's statements. */
async function mesh(levels: ReadonlyArray<"trusted" | "verified">): Promise<{ nodes: CoderClawNode[]; homes: string[]; share: () => Promise<void> }> {
  const started = await startNodes(levels.length + 1, () => ({ agents: [createShellAgent()] }));
  cleanup.push(started.stop);
  const [a, ...rest] = started.nodes as [CoderClawNode, ...CoderClawNode[]];
  await a.createMesh("authority");
  for (const [i, n] of rest.entries()) {
    const { invite } = await a.pairing.invite(levels[i]!, 60_000);
    await n.pairing.join(invite);
  }
  for (const x of started.nodes) for (const y of started.nodes) if (x !== y) await x.dial(y.multiaddrs()[0]!).catch(() => undefined);
  // Statements reach members by the mesh's statement replication; handed over directly here.
  const share = async (): Promise<void> => {
    for (const n of rest) await n.membership.add(a.membership.statements());
  };
  await share();
  for (const n of started.nodes) await eventually(() => rest.every((d) => n.security.current.grants.rolesOf(d.peerId).size > 0), 15_000, "grants everywhere");
  return { nodes: started.nodes, homes: started.homes, share };
}

describe("authority is what signatures prove", () => {
  it("privilege by relay: a member's session naming the founder as admin gets it nothing; refused and audited naming the relaying device", async () => {
    const { nodes, share } = await mesh(["trusted", "verified"]);
    const [a, b, m] = nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const marker = join(m.dataDir, "pwned");

    // On its own node the member may mint any session: it names the founder, with the founder's role.
    const forged = await m.security.current.createSession(a.peerId, m.peerId, ["admin"]);
    const refused = await m.client.submit(a.peerId, { description: "relayed shell", input: `touch ${marker}`, agentId: "shell" }, forged.token).catch((e: unknown) => e);
    expect(hasCode(refused, "PERMISSION_DENIED"), String(refused)).toBe(true);
    // Nor can it lend a developer's role it does not hold itself, even for an ordinary agent.
    const asDeveloper = await m.security.current.createSession(b.peerId, m.peerId, ["developer"]);
    expect(hasCode(await m.client.submit(a.peerId, { description: "relayed echo", input: "x", agentId: "echo" }, asDeveloper.token).catch((e: unknown) => e), "PERMISSION_DENIED")).toBe(true);

    // Nothing ran or was stored on the executor; the refusals name the user the session claimed and the device that sent it.
    expect((await a.core.engine.listTasks()).map((t) => t.description)).toEqual([]);
    expect(existsSync(marker)).toBe(false);
    const denied = (await a.security.current.getAuditLog({ action: "task.submit", result: "denied" })).filter((e) => e.author === a.peerId);
    expect(denied.map((e) => [e.body.userId, e.body.deviceId, e.body.resource])).toEqual([
      [a.peerId, m.peerId, "shell"],
      [b.peerId, m.peerId, "echo"],
    ]);

    // A device relays what it holds: alice's developer grant through the developer device B.
    await a.membership.add([decodeStatement(signRoleGrant(a.identity, { subject: "alice", roles: ["developer"], meshId: a.membership.meshId! }))]);
    await share();
    await eventually(() => a.security.current.grants.rolesOf("alice").has("developer") && b.security.current.grants.rolesOf("alice").has("developer"), 15_000, "alice's grant");
    const alice = await b.security.current.createSession("alice", b.peerId, ["developer"]);
    const relayed = await b.client.submit(a.peerId, { description: "alice via b", input: "hi", agentId: "echo" }, alice.token);
    expect(relayed.executorId).toBe(a.peerId);
    const allowed = (await a.security.current.getAuditLog({ action: "task.submit", result: "allowed" })).filter((e) => e.author === a.peerId);
    expect(allowed.map((e) => [e.body.userId, e.body.deviceId])).toEqual([["alice", b.peerId]]);
  }, 90_000);

  it("HTTP: ci and developer sessions may not run shell under the default policy, nor after an admin makes shell-exec admin-only; an admin may", async () => {
    const { nodes } = await mesh(["trusted", "verified"]);
    const [a, b, c] = nodes as [CoderClawNode, CoderClawNode, CoderClawNode];
    const service = a.security.current;
    const server: HttpServer = await createHttpServer({ adapter: a.adapter, ...securityHttpHooks(service, { deviceId: a.peerId }) });
    cleanup.push(() => server.close());
    const client = async (user: string, role: string): Promise<HTTPTransportAdapter> =>
      new HTTPTransportAdapter({ baseUrl: server.url, token: (await service.createSession(user, a.peerId, [role])).token });
    const [developer, ci, admin] = [await client(b.peerId, "developer"), await client(c.peerId, "ci"), await client(a.peerId, "admin")];
    const shell = { description: "shell over http", input: "echo ran", agentId: "shell" };
    const outcome = async (http: HTTPTransportAdapter): Promise<string> => {
      const result = await http.submitTask(shell).catch((e: unknown) => e);
      return hasCode(result, "PERMISSION_DENIED") ? "denied" : "id" in (result as object) ? "accepted" : String(result);
    };
    const sign = async (text: string): Promise<void> => {
      const before = (await service.getAuditLog({ action: "config.policy", result: "allowed" })).filter((e) => e.author === a.peerId).length;
      await runAdmin(a, "policy.sign", { scope: "repo", text, file: "security.yaml" });
      await eventually(async () => (await service.getAuditLog({ action: "config.policy", result: "allowed" })).filter((e) => e.author === a.peerId).length > before, 15_000, "policy in force");
    };

    expect([await outcome(developer), await outcome(ci), await outcome(admin)]).toEqual(["denied", "denied", "accepted"]);
    await sign("remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [admin]\n");
    expect([await outcome(developer), await outcome(ci), await outcome(admin)]).toEqual(["denied", "denied", "accepted"]);
    // The same path honours a policy that does let developers in: the refusals above are the policy's, not the path's.
    await sign("remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\n");
    expect([await outcome(developer), await outcome(ci), await outcome(admin)]).toEqual(["accepted", "denied", "accepted"]);

    const denials = (await service.getAuditLog({ action: "task.submit", result: "denied" })).filter((e) => e.author === a.peerId);
    expect(denials.filter((e) => e.body.userId === c.peerId)).toHaveLength(3);
    expect(denials.filter((e) => e.body.userId === b.peerId)).toHaveLength(2);
    expect(denials.every((e) => /shell-exec|skill:execute/.test(e.body.reason ?? ""))).toBe(true);
  }, 90_000);

  it("replay after the executor restarts: the same signed submission is refused, and so is one signed before the replay window", async () => {
    const { nodes, homes } = await mesh(["trusted"]);
    const [a, b] = nodes as [CoderClawNode, CoderClawNode];
    const envelope = (description: string, issuedAt = Date.now()): Uint8Array =>
      encodeCanonical({ request: { description, input: "x", agentId: "echo" }, requester: b.peerId, meshId: b.membership.meshId!, issuedAt, nonce: randomBytes(16) } satisfies SubmitEnvelope);
    const send = async (executor: CoderClawNode, bytes: Uint8Array): Promise<TaskMessage> => {
      const stream = await b.libp2p.dialProtocol(peerIdFromString(executor.peerId), TASK_PROTOCOL);
      const channel = new FramedChannel<TaskMessage>({ stream, codec: createTaskCodec(), peer: executor.peerId });
      try {
        await channel.send({ t: "submit", sig: b.identity.sign(submitSignedBytes([bytes])), items: [{ rid: 1, envelope: bytes }] });
        for (;;) {
          const m = await channel.receive({ timeoutMs: 10_000 });
          if (m.t !== "lease") return m;
        }
      } finally {
        await channel.close().catch(() => undefined);
      }
    };

    const once = envelope("once");
    expect(await send(a, once)).toMatchObject({ t: "state" });
    expect(await send(a, once)).toMatchObject({ t: "err", code: "PERMISSION_DENIED", message: "replayed submission" });

    await a.stop();
    const restarted = await createNode({ dataDir: homes[0]!, mdns: false, agents: createBuiltinRegistry([createShellAgent()]), leaseIntervalMs: 200 });
    cleanup.push(() => restarted.stop());
    await b.dial(restarted.multiaddrs()[0]!);

    expect(await send(restarted, once)).toMatchObject({ t: "err", code: "PERMISSION_DENIED", message: "replayed submission" });
    // Within the clock window, but more than the replay memory (60 s) behind the newest submission taken before the restart.
    expect(await send(restarted, envelope("stale", Date.now() - 90_000))).toMatchObject({ t: "err", code: "PERMISSION_DENIED", message: expect.stringMatching(/outside the replay window/) });
    expect(await send(restarted, envelope("fresh"))).toMatchObject({ t: "state" });
    expect((await restarted.core.engine.listTasks()).map((t) => t.description).sort()).toEqual(["fresh", "once"]);
  }, 90_000);
});
