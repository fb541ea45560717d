import { chmodSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

type Node = Awaited<ReturnType<typeof startCli>>;

async function startNode(home: string): Promise<{ node: Node; url: string }> {
  const node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], home, /control socket/);
  cleanups.push(() => (node.child.exitCode === null && node.child.signalCode === null ? node.stop() : undefined));
  return { node, url: /http (http:\/\/\S+)/.exec(node.output())![1]! };
}

/** SIGKILL: nothing the node did not make durable before answering survives. */
function kill(node: Node): Promise<void> {
  return new Promise((resolve) => {
    if (node.child.exitCode !== null) return resolve();
    node.child.once("exit", () => resolve());
    node.child.kill("SIGKILL");
  });
}

async function call(url: string, token: string, method = "GET", path = "/v1/tasks", body?: unknown): Promise<{ status: number; message: string }> {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  const json = (await response.json()) as { error?: { message: string } };
  return { status: response.status, message: json.error?.message ?? "" };
}

async function create(home: string, ...flags: string[]): Promise<{ id: string; token: string }> {
  const r = await runCli(["session", "create", "--json", ...flags], home);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { id: string; token: string };
}

describe("coderclaw session", () => {
  it("sessions survive a restart (even a SIGKILL right after a revoke), a read-only one may only read, a revoked or forged token is refused saying so", { timeout: 120_000 }, async () => {
    const dir = tempDir("cc-cli-sessions-");
    cleanups.push(() => dir.remove());
    const home = dir.path;
    let { node, url } = await startNode(home);
    expect((await runCli(["mesh", "create", "--name", "sessions"], home)).code).toBe(0);

    const full = await create(home);
    const reader = await create(home, "--read-only", "--ttl", "2h");
    const doomed = await create(home);
    expect((await call(url, full.token)).status).toBe(200);

    // Read-only: GET works, every write is refused with the reason, over HTTP and through the CLI, and audited.
    expect((await call(url, reader.token)).status).toBe(200);
    const post = await call(url, reader.token, "POST", "/v1/tasks", { description: "x", input: "x", agentId: "echo" });
    expect(post).toEqual({ status: 403, message: expect.stringMatching(new RegExp(`session ${reader.id} is read-only: POST /v1/tasks would change something`)) });
    expect((await call(url, reader.token, "POST", "/v1/invites", { level: "verified" })).status).toBe(403);
    const cliSubmit = await runCli(["task", "submit", "hi", "--agent", "echo", "--server", url, "--token", reader.token], home);
    expect(cliSubmit.code).toBe(3);
    expect(cliSubmit.stderr).toMatch(/read-only/);
    const audit = JSON.parse((await runCli(["audit", "query", "--action", "session.write", "--json"], home)).stdout) as Array<{ body: { result: string; resource: string; sessionId: string } }>;
    expect(audit.map((e) => e.body)).toEqual(expect.arrayContaining([expect.objectContaining({ result: "denied", resource: "POST /v1/tasks", sessionId: reader.id })]));

    // Revoke by a prefix of the id, then kill the node at once: the answer meant it was durable.
    const revoked = await runCli(["session", "revoke", doomed.id.slice(0, 8), "--reason", "laptop lost"], home);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toContain(`revoked session ${doomed.id}`);
    await kill(node);

    const file = join(home, "sessions.json");
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, "utf8");
    for (const s of [full, reader, doomed]) expect(text).not.toContain(s.token.split(".")[2]);

    ({ node, url } = await startNode(home));
    expect((await call(url, full.token)).status).toBe(200);
    expect((await call(url, reader.token, "POST", "/v1/tasks", { description: "x", input: "x" })).status).toBe(403);
    expect(await call(url, doomed.token)).toEqual({ status: 401, message: expect.stringMatching(/was revoked \(laptop lost\); token replayed/) });
    const [p, claims, sig] = full.token.split(".") as [string, string, string];
    const forged = `${p}.${claims}.${sig.startsWith("A") ? "B" : "A"}${sig.slice(1)}`;
    expect(await call(url, forged)).toEqual({ status: 401, message: expect.stringMatching(/session token signature does not verify$/) });

    const list = JSON.parse((await runCli(["session", "list", "--json"], home)).stdout) as Array<{ id: string; state: string; readOnly: boolean; revokedBecause?: string }>;
    expect(list).toEqual(expect.arrayContaining([
      expect.objectContaining({ id: full.id, state: "active", readOnly: false }),
      expect.objectContaining({ id: reader.id, state: "active", readOnly: true }),
      expect.objectContaining({ id: doomed.id, state: "revoked", revokedBecause: "laptop lost" }),
    ]));
    const table = await runCli(["session", "list"], home);
    expect(table.stdout).toMatch(/read-only/);

    // What would change nothing is refused, not answered "revoked".
    const again = await runCli(["session", "revoke", doomed.id], home);
    expect([again.code, again.stderr]).toEqual([2, expect.stringMatching(/already revoked/)]);
    const unknown = await runCli(["session", "revoke", "ffffffff"], home);
    expect([unknown.code, unknown.stderr]).toEqual([2, expect.stringMatching(/no session starts with "ffffffff"/)]);
    const remote = await runCli(["session", "list", "--server", url, "--token", full.token], home);
    expect([remote.code, remote.stderr]).toEqual([2, expect.stringMatching(/does not offer `session list`/)]);

    // With the node down, the revocation goes through a node opened for the call (holding the home's lock, so a
    // start racing it waits its turn or fails on the lock), and holds once the node is back.
    await node.stop();
    const offline = await runCli(["session", "revoke", reader.id.slice(0, 6)], home, 30_000);
    expect(offline.code, offline.stderr).toBe(0);
    ({ node, url } = await startNode(home));
    expect(await call(url, reader.token)).toEqual({ status: 401, message: expect.stringMatching(/was revoked/) });

    // A sessions file others may write could bring a revoked session back: the node will not start on it.
    await node.stop();
    chmodSync(file, 0o644);
    const refused = await runCli(["start", "--no-mdns"], home, 30_000);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/sessions\.json: sessions file is accessible by group or others \(mode 644\); run chmod 600/);
  });
});
