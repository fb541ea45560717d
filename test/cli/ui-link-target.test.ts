import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * `coderclaw ui` mints a session of the node's own device (its roles, often
 * admin) and hands its token to the dashboard's HTTP address for a login code.
 * That address must be the running node's, as the node says over its control
 * socket: the port runtime.yaml names may be held by another local user's
 * listener whenever the node serves elsewhere (`start --http host:port`) or
 * serves no HTTP at all.
 */
describe("coderclaw ui sends the token only to the running node's HTTP API", () => {
  const home = tempDir("cc-ui-target-");
  const cleanups: Array<() => Promise<unknown>> = [];
  const captured: string[] = [];
  let decoy: Server;

  beforeAll(async () => {
    assertBuilt();
    // Another local user's listener on the port runtime.yaml names, answering as the node would.
    decoy = createServer((req, res) => {
      captured.push(req.headers.authorization ?? "");
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ code: "x".repeat(32), expiresAt: new Date().toISOString() }));
    });
    await new Promise<void>((resolve) => decoy.listen(0, "127.0.0.1", resolve));
    mkdirSync(join(home.path, ".coderClaw"), { recursive: true });
    writeFileSync(join(home.path, ".coderClaw", "runtime.yaml"), `http:\n  host: 127.0.0.1\n  port: ${(decoy.address() as AddressInfo).port}\n`);
    expect((await runCli(["mesh", "create", "--name", "ui-target"], home.path, 20_000, {}, home.path)).code).toBe(0);
  }, 60_000);
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await new Promise<void>((resolve) => decoy.close(() => resolve()));
    home.remove();
  });

  it("refuses while the node serves no HTTP, creating no session, and sends nothing to the configured port", async () => {
    const node = await startCli(["start", "--no-mdns"], home.path, /control socket/);
    const sessions = async (): Promise<number> => (JSON.parse((await runCli(["session", "list", "--json"], home.path, 20_000, {}, home.path)).stdout) as unknown[]).length;
    try {
      const before = await sessions();
      const run = await runCli(["ui"], home.path, 20_000, {}, home.path);
      expect(run.code).not.toBe(0);
      expect(run.stderr).toMatch(/--http/);
      expect(captured).toEqual([]);
      expect(await sessions()).toBe(before);
    } finally {
      await node.stop();
    }
  }, 60_000);

  it("links to where the node serves (start --http), whatever runtime.yaml says", async () => {
    const node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], home.path, /control socket/);
    cleanups.push(() => node.stop());
    const httpUrl = /http (http:\/\/\S+)/.exec(node.output())![1]!;
    const run = await runCli(["ui"], home.path, 20_000, {}, home.path);
    expect(run.code, run.stderr).toBe(0);
    expect(captured).toEqual([]);
    const code = new RegExp(`^${httpUrl}/#login=([A-Za-z0-9_-]+)\\n$`).exec(run.stdout)?.[1];
    expect(code, run.stdout).toBeDefined();
    const login = await fetch(`${httpUrl}/ui/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code }) });
    expect(login.status).toBe(200);

    // --open: the browser (here an xdg-open that notes what it was given) gets a page only this user reads, not the
    // link, whose code any local user reads on a command line.
    const bin = join(home.path, "bin");
    mkdirSync(bin);
    writeFileSync(join(bin, "xdg-open"), `#!/bin/sh\nprintf '%s' "$*" > ${join(home.path, "opened")}\n`, { mode: 0o755 });
    const opened = await runCli(["ui", "--open"], home.path, 20_000, { PATH: `${bin}:${process.env.PATH ?? ""}` }, home.path);
    expect(opened.code, opened.stderr).toBe(0);
    const openCode = /#login=([A-Za-z0-9_-]+)/.exec(opened.stdout)![1]!;
    await eventually(async () => existsSync(join(home.path, "opened")), 10_000, "xdg-open ran");
    const argv = readFileSync(join(home.path, "opened"), "utf8");
    expect(argv).not.toContain(openCode);
    const page = fileURLToPath(argv);
    expect(statSync(page).mode & 0o777).toBe(0o600);
    expect(statSync(dirname(page)).mode & 0o777).toBe(0o700);
    expect(readFileSync(page, "utf8")).toContain(`url=${httpUrl}/#login=${openCode}`);
  }, 60_000);
});
