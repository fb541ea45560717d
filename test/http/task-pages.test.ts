import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import type { TaskState } from "../../src/contract/types.js";
import { PAGE_SCAN } from "../../src/engine/task-page.js";
import { openEngine, type Engine } from "./engine.js";
import { TOKENS, request, startServer } from "./helpers.js";

interface Page {
  tasks: TaskState[];
  next?: string;
}

describe("GET /v1/tasks a page at a time", () => {
  let engine: Engine;
  let server: HttpServer;
  let oldest: TaskState;
  const alices: string[] = [];

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter);
    const submit = (sessionId: string, agentId = "echo"): Promise<TaskState> => engine.adapter.submitTask({ description: sessionId, input: "1", agentId, sessionId });
    oldest = await submit("s-alice", "sleep");
    alices.push(oldest.id);
    // More tasks than one page looks at, two sessions interleaved.
    for (let i = 0; i < PAGE_SCAN + 500; i += 250) {
      const made = await Promise.all(Array.from({ length: 250 }, (_, k) => submit(k % 2 === 0 ? "s-alice" : "s-bob")));
      alices.push(...made.filter((t) => t.sessionId === "s-alice").map((t) => t.id));
    }
  }, 120_000);
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  async function all(token: string, query: string): Promise<{ ids: string[]; pages: number }> {
    const ids: string[] = [];
    let next: string | undefined;
    let pages = 0;
    do {
      const answer = await request(server.url, "GET", `/v1/tasks?${query}${next === undefined ? "" : `&before=${encodeURIComponent(next)}`}`, { token });
      expect(answer.status).toBe(200);
      const page = answer.body as Page;
      ids.push(...page.tasks.map((t) => t.id));
      next = page.next;
      pages += 1;
    } while (next !== undefined);
    return { ids, pages };
  }

  it("reaches every task the caller may read once, newest first, and none it may not", async () => {
    const { ids, pages } = await all(TOKENS.alice, "limit=300");
    expect(pages).toBeGreaterThan(3);
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids.sort()).toEqual([...alices].sort());
    const first = (await request(server.url, "GET", "/v1/tasks?limit=300", { token: TOKENS.alice })).body as Page;
    const created = first.tasks.map((t) => Date.parse(t.createdAt as unknown as string));
    expect(created).toEqual([...created].sort((a, b) => b - a));
  });

  it("an unindexed filter looks at a bounded number of tasks per page and still reaches the oldest", async () => {
    // No task runs on a device whose id holds this: every page looks at its 2,000 and says where to go on.
    const page = (await request(server.url, "GET", "/v1/tasks?executor=zzzz&limit=10", { token: TOKENS.alice })).body as Page;
    expect(page.tasks).toEqual([]);
    expect(page.next).toMatch(/^\d{15}:/);
    const { ids, pages } = await all(TOKENS.alice, "executor=zzzz&limit=10");
    expect(ids).toEqual([]);
    expect(pages).toBe(2);
  });

  it("an agent filter reads the agent index: the oldest task, behind 2,500 of another agent, is on the first page", async () => {
    const page = (await request(server.url, "GET", "/v1/tasks?agentId=sleep&limit=10", { token: TOKENS.alice })).body as Page;
    expect(page.tasks.map((t) => t.id)).toEqual([oldest.id]);
    expect(page.next).toBeUndefined();
  });

  it("refuses a position or limit that is not one, saying which", async () => {
    for (const [query, field] of [["before=1%3Aabc", "before"], ["before=000000000000001:..%2F", "before"], [`before=${"9".repeat(15)}:${"a".repeat(200)}`, "before"], ["limit=1001", "limit"], ["executor=", "executor"]] as const) {
      const answer = await request(server.url, "GET", `/v1/tasks?${query}`, { token: TOKENS.alice });
      expect(answer.status, query).toBe(400);
      expect(JSON.stringify(answer.body), query).toContain(field);
    }
  });
});
