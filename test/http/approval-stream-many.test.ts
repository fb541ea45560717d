import { randomUUID } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { TaskApprovalView } from "../../node/approvals/task-approvals.js";
import type { HttpServer } from "../../node/http/index.js";
import { openEngine, type Engine } from "./engine.js";
import { eventually } from "../helpers/mesh.js";
import { openSse, startServer, TOKENS } from "./helpers.js";

/**
 * Task approval requests are signed statements any member may add to the
 * mesh's set; the stream wakes at the earliest deadline of those it holds. Held
 * requests past the engine's argument limit (about 120,000) must not break every
 * approvals stream, the dashboard's included.
 */
describe("approvals stream with very many open requests", () => {
  const COUNT = 150_000;
  const deadline = Date.now() + 3_600_000;
  const open: TaskApprovalView[] = Array.from({ length: COUNT }, (_, i) => {
    const taskId = randomUUID();
    return { signer: "peer", meshId: "mesh", taskId, agentId: "echo", submittedBy: "peer", description: "", rule: "r", askedAt: i, deadline: deadline + i, ref: `task/${taskId}`, statementId: String(i) };
  });
  let engine: Engine;
  let server: HttpServer;

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter, {
      taskApprovals: { list: () => open, watch: () => () => undefined, decideHere: () => Promise.resolve() },
    });
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("sends every open request, then synced, and stays open", async () => {
    // An approver's stream, which sends every request as listed (a reader's looks up each one's task).
    const sse = openSse(server.url, "/v1/task-approvals/events", TOKENS.admin);
    await eventually(() => sse.frames.some((f) => f.event !== "update" || f.data.includes('"synced"')), 60_000, "synced or an error");
    await new Promise((r) => setTimeout(r, 200));
    sse.cut();
    expect(sse.frames.filter((f) => f.event !== "update")).toEqual([]);
    expect(sse.frames).toHaveLength(COUNT + 1);
  }, 90_000);
});
