import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CoderClawNode } from "../../node/create-node.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import type { TaskState } from "../../src/contract/types.js";
import { eventually, grantedSession, startNodes } from "../helpers/mesh.js";
import { request } from "./helpers.js";

/**
 * A task placed on a member runs there as an attempt under a key derived from
 * its idempotency key, and the member answers a repeated key with the attempt
 * it has. Every HTTP caller of a node submits as that node: the key must not
 * let one session's submission reach another session's attempt, whose output
 * the new task would then show.
 */
describe("idempotency keys over HTTP stay within the caller's session", () => {
  let stop: () => Promise<void>;
  let a: CoderClawNode;
  let member: CoderClawNode;
  let server: HttpServer;
  const tokens: Record<string, string> = {};

  beforeAll(async () => {
    const mesh = await startNodes(2);
    stop = mesh.stop;
    [a, member] = mesh.nodes as [CoderClawNode, CoderClawNode];
    await a.createMesh("idempotency");
    const { invite } = await a.pairing.invite("trusted", 60_000);
    await member.pairing.join(invite);
    await member.membership.add(a.membership.statements());
    await eventually(() => member.security.current.grants.rolesOf(member.peerId).size > 0, 15_000, "the member's grants");
    for (const subject of ["x", "y"]) {
      tokens[subject] = await grantedSession(a, subject, ["developer"]);
    }
    server = await createHttpServer({ adapter: a.adapter, ...securityHttpHooks(a.security.current, { deviceId: a.peerId }) });
  }, 60_000);
  afterAll(async () => {
    await server?.close();
    await stop?.();
  });

  const submit = async (who: string, input: string): Promise<TaskState> => {
    const body = JSON.stringify({ description: "deploy", input, agentId: "echo", metadata: { idempotencyKey: "deploy-42" } });
    const answer = await request(server.url, "POST", `/v1/tasks?route=${member.peerId}`, { token: tokens[who]!, body });
    expect(answer.status, JSON.stringify(answer.body)).toBe(201);
    const id = (answer.body as TaskState).id;
    await eventually(async () => ["completed", "failed"].includes((await a.adapter.getTaskState(id))?.status ?? ""), 15_000, `${who}'s task`);
    return (await a.adapter.getTaskState(id))!;
  };

  it("another session's submission under the same key runs its own work; the same session's reaches its attempt", async () => {
    const first = await submit("x", "x's secret");
    expect(first.output).toBe("x's secret");
    expect((await request(server.url, "GET", `/v1/tasks/${first.id}`, { token: tokens.y! })).status).toBe(403);

    const other = await submit("y", "y's input");
    expect(other.output).toBe("y's input");
    expect(other.placement?.attemptId).not.toBe(first.placement?.attemptId);

    const again = await submit("x", "x's secret");
    expect(again.placement?.attemptId).toBe(first.placement?.attemptId);
  }, 60_000);
});
