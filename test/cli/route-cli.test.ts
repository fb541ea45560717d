import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

function home(): string {
  const d = tempDir("cc-route-");
  cleanups.push(() => d.remove());
  return d.path;
}

const STRANGER = "12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN";

// --route travels through the contract to whichever runtime the CLI reached, which honours or refuses it.
describe("coderclaw task submit --route", () => {
  it("without a node: local runs in-process; a peer is refused by the in-process runtime, exit 2, nothing stored", async () => {
    const h = home();
    const local = await runCli(["task", "submit", "here", "--route", "local", "--wait"], h);
    expect(local.code).toBe(0);
    expect(local.stdout).toBe("here\n");
    const peer = await runCli(["task", "submit", "there", "--route", STRANGER], h);
    expect(peer.code).toBe(2);
    expect(peer.stderr).toContain("route: LocalTransportAdapter runs tasks in this process");
    expect(peer.stderr).toContain("coderclaw start");
    const list = await runCli(["task", "list", "--json"], h);
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(1);
  });

  it("with a node running: local and the node's own id run there; a peer that is not a member is refused, exit 2", { timeout: 60_000 }, async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    const status = JSON.parse((await runCli(["status", "--json"], h)).stdout) as { reachedThrough: string };
    expect(status.reachedThrough).toBe("node");
    const local = await runCli(["task", "submit", "on the node", "--route", "local", "--wait", "--json"], h);
    expect(local.code).toBe(0);
    const done = JSON.parse(local.stdout) as { status: string; executorId: string };
    expect(done.status).toBe("completed");
    const self = await runCli(["task", "submit", "by id", "--route", done.executorId, "--wait", "--json"], h);
    expect(JSON.parse(self.stdout)).toMatchObject({ status: "completed", executorId: done.executorId });
    const stranger = await runCli(["task", "submit", "elsewhere", "--route", STRANGER], h);
    expect(stranger.code).toBe(2);
    expect(stranger.stderr).toContain(`route: ${STRANGER} is not a member of this mesh`);
  });
});
