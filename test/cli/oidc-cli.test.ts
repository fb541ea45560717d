import { mkdirSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

/** A local stand-in for GitHub's OIDC issuer: its JWKS at /jwks, and tokens signed with its key. */
async function issuer(): Promise<{ url: string; sign: (claims: Record<string, unknown>) => Promise<string> }> {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid: "k1", alg: "RS256", use: "sig" };
  const server: Server = createServer((req, res) => {
    if (req.url === "/jwks") res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] }));
    else res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  cleanups.push(() => new Promise((r) => server.close(r)));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    sign: (claims) => new SignJWT(claims).setProtectedHeader({ alg: "RS256", kid: "k1" }).setIssuer(url).setAudience("coderclaw").setIssuedAt().setExpirationTime("10m").sign(privateKey),
  };
}

describe("identity providers declared in runtime.yaml", () => {
  it("a GitHub-Actions-style token from a matching repository submits over HTTP to a node started from the CLI; others are refused, saying why", { timeout: 60_000 }, async () => {
    const gh = await issuer();
    const dir = tempDir("cc-cli-oidc-");
    cleanups.push(() => dir.remove());
    const home = join(dir.path, "home");
    mkdirSync(join(home, ".coderClaw"), { recursive: true });
    writeFileSync(
      join(home, ".coderClaw", "runtime.yaml"),
      ["auth:", "  github:", `    issuer: ${gh.url}`, `    jwksUrl: ${gh.url}/jwks`, "    audience: coderclaw", "    rules:", "      - repository: acme/app", "        ref: refs/heads/*", "        identity: acme-ci", "        roles: [ci]", ""].join("\n"),
    );
    const node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], home, /control socket/);
    cleanups.push(() => node.stop());
    const url = /http (http:\/\/\S+)/.exec(node.output())![1]!;
    const elsewhere = join(dir.path, "runner");
    mkdirSync(elsewhere);

    const ok = await gh.sign({ repository: "acme/app", workflow: "ci", ref: "refs/heads/main", sub: "repo:acme/app:ref:refs/heads/main" });
    const sub = await runCli(["task", "submit", "from ci", "--agent", "echo", "--wait", "--json", "--server", url, "--token", ok], elsewhere);
    expect(sub.code, sub.stderr).toBe(0);
    expect(JSON.parse(sub.stdout)).toMatchObject({ status: "completed", output: "from ci" });

    const otherRepo = await gh.sign({ repository: "evil/app", workflow: "ci", ref: "refs/heads/main" });
    const refused = await runCli(["task", "list", "--server", url, "--token", otherRepo], elsewhere);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/no GitHub rule matches repository evil\/app/);

    const forged = await (await issuer()).sign({ repository: "acme/app", workflow: "ci", ref: "refs/heads/main" });
    const unknown = await runCli(["task", "list", "--server", url, "--token", forged], elsewhere);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/neither a session token nor a JWT from a known issuer/);
  });

  it("refuses a runtime.yaml whose auth section is wrong, naming file, line and key", async () => {
    const dir = tempDir("cc-cli-oidc-bad-");
    cleanups.push(() => dir.remove());
    mkdirSync(join(dir.path, ".coderClaw"));
    writeFileSync(join(dir.path, ".coderClaw", "runtime.yaml"), "auth:\n  github:\n    audience: coderclaw\n    rules: []\n");
    const check = await runCli(["config", "check"], dir.path);
    expect(check.code).toBe(2);
    expect(check.stderr + check.stdout).toMatch(/runtime\.yaml:4.*auth\.github\.rules/s);
  });
});
