import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * Login CSRF through a login link: anyone holding a token of the node can mint a link
 * to their own session and send it to someone else. The page must never put a tab into
 * that session unasked, and must name it before anything is shown or typed in it.
 */
describe("dashboard login links against a real node", () => {
  const home = tempDir("cc-dash-link-");
  let node: Awaited<ReturnType<typeof startCli>>;
  let httpUrl: string;
  let idA: string;
  let adminToken: string;
  /** The other holder: user bob, read-only. */
  let bobToken: string;

  beforeAll(async () => {
    assertBuilt();
    expect((await runCli(["mesh", "create", "--name", "dashboard"], home.path)).code).toBe(0);
    node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], home.path, /control socket/);
    httpUrl = /http (http:\/\/\S+)/.exec(node.output())![1]!;
    idA = (JSON.parse((await runCli(["id", "--json"], home.path)).stdout) as { deviceId: string }).deviceId;
    adminToken = (await runCli(["session", "create"], home.path)).stdout.trim();
    expect((await runCli(["roles", "grant", "bob", "developer"], home.path)).code).toBe(0);
    const bob = await runCli(["session", "create", "--user", "bob", "--read-only", "--json"], home.path);
    expect(bob.code, bob.stderr).toBe(0);
    bobToken = (JSON.parse(bob.stdout) as { token: string }).token;
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
    home.remove();
  });

  it("GET /v1/session says whether the session is read-only", async () => {
    const session = async (token: string): Promise<unknown> => (await fetch(`${httpUrl}/v1/session`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(await session(bobToken)).toEqual({ userId: "bob", roles: ["developer"], readOnly: true, may: { submit: false, cancel: false, approve: false, admin: false } });
    expect(await session(adminToken)).toMatchObject({ userId: idA, roles: ["admin"], readOnly: false, may: { admin: true } });
  });
});
