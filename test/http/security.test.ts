import { execFile } from "node:child_process";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { AddressInfo } from "node:net";
import { SignJWT, exportJWK, generateKeyPair, type CryptoKey, type JWTPayload } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoderClawError } from "../../src/contract/errors.js";
import {
  AuditLog,
  GITHUB_ACTIONS_ISSUER,
  GitHubActionsIdentityProvider,
  SecurityService,
  generateSigner,
  signRoleGrant,
} from "../../src/security/index.js";
import { HTTPTransportAdapter } from "../../src/transport/http-adapter.js";
import { createHttpServer, securityHttpHooks, type HttpServer } from "../../node/http/index.js";
import { meshIdFor, tempLevel } from "../security/helpers.js";
import { tempDir } from "../helpers/temp-dir.js";
import { openEngine, type Engine } from "./engine.js";
import { openSse, request } from "./helpers.js";

const MESH = meshIdFor("h");
const AUDIENCE = "coderclaw";

async function codeOf(promise: Promise<unknown>): Promise<string | undefined> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  return err instanceof CoderClawError ? err.code : err === undefined ? undefined : String(err);
}

/**
 * The remote-enabled node as it runs: the real engine, the real security service
 * and the HTTP server wired by securityHttpHooks, with GitHub Actions OIDC tokens
 * verified against a JWKS server on 127.0.0.1 (standing in for GitHub's).
 */
describe("HTTP API with the security service", () => {
  const node = generateSigner();
  const owner = generateSigner();
  let level: Awaited<ReturnType<typeof tempLevel>>;
  let service: SecurityService;
  let engine: Engine;
  let server: HttpServer;
  let jwks: Server;
  let signingKey: CryptoKey;

  const githubToken = (claims: JWTPayload, expiresIn = "5m"): Promise<string> =>
    new SignJWT({ repository: "acme/app", workflow: "ci", ref: "refs/heads/main", ...claims })
      .setProtectedHeader({ alg: "RS256", kid: "gh1" })
      .setIssuer(GITHUB_ACTIONS_ISSUER)
      .setAudience(AUDIENCE)
      .setSubject("repo:acme/app:ref:refs/heads/main")
      .setIssuedAt()
      .setExpirationTime(expiresIn)
      .sign(signingKey);

  beforeAll(async () => {
    const pair = await generateKeyPair("RS256", { extractable: true });
    signingKey = pair.privateKey;
    const jwk = { ...(await exportJWK(pair.publicKey)), kid: "gh1", alg: "RS256", use: "sig" };
    jwks = createServer((_req, res) => res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [jwk] })));
    await new Promise<void>((resolve) => jwks.listen(0, "127.0.0.1", resolve));

    level = await tempLevel();
    service = new SecurityService({
      meshId: MESH,
      signer: node,
      audit: new AuditLog({ db: level.db, signer: node }),
      rootAdmins: [owner.peerId],
      deviceStanding: (id) => (id === node.peerId ? { level: "trusted", revoked: false } : undefined),
      providers: [
        new GitHubActionsIdentityProvider({
          audience: AUDIENCE,
          jwksUrl: `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks`,
          rules: [{ repository: "acme/app", workflow: "ci", ref: "refs/heads/*", identity: "ci:acme/app", roles: ["ci"] }],
        }),
      ],
    });
    for (const [subject, roles] of [["dev", ["developer"]], ["reader", ["readonly"]]] as const) {
      await service.addRoleGrant(signRoleGrant(owner, { subject, roles: [...roles], meshId: MESH, issuedAt: Date.now() }));
    }
    engine = await openEngine();
    server = await createHttpServer({ adapter: engine.adapter, ...securityHttpHooks(service, { deviceId: node.peerId }) });
  });

  afterAll(async () => {
    await server.close();
    await engine.close();
    await service.audit.close();
    await level.dispose();
    await new Promise<void>((resolve) => jwks.close(() => resolve()));
  });

  it("runs a CI job on a GitHub Actions OIDC token, with no long-lived secret", async () => {
    const client = new HTTPTransportAdapter({ baseUrl: server.url, token: await githubToken({}) });
    const task = await client.submitTask({ description: "ci check", input: "lint ok", agentId: "echo" });
    const statuses: string[] = [];
    for await (const update of client.streamTaskUpdates(task.id)) statuses.push(update.status);
    expect(statuses.at(-1)).toBe("completed");
    expect(await client.getTaskState(task.id)).toMatchObject({ output: "lint ok" });
    // The ci role may submit and read but not cancel.
    expect(await codeOf(client.cancelTask(task.id))).toBe("PERMISSION_DENIED");

    const logins = await service.getAuditLog({ userId: "ci:acme/app", action: "auth.login" });
    expect(logins).toHaveLength(1);
    expect(await service.getAuditLog({ userId: "ci:acme/app", action: "task.submit", result: "allowed" })).toHaveLength(1);
    expect(await service.getAuditLog({ userId: "ci:acme/app", action: "task.cancel", result: "denied" })).toHaveLength(1);
  });

  it("runs action.yml's script as a workflow would: OIDC token from the runner, the CLI, exit code and outputs", async () => {
    const cli = join(process.cwd(), "dist", "node", "cli", "main.js");
    expect(existsSync(cli), `${cli} missing: run npx tsc -p tsconfig.json`).toBe(true);
    const action = parseYaml(readFileSync("action.yml", "utf8")) as { runs: { steps: { id?: string; run?: string }[] } };
    const script = action.runs.steps.find((step) => step.id === "run")?.run ?? "";
    const dir = tempDir("cc-action-");
    // The runner's token service: hands the job a JWT for the audience it asks for.
    const jwt = await githubToken({});
    const tokenService = createServer((req, res) => {
      const ok = req.headers.authorization === "bearer runner-request-token" && (req.url ?? "").includes("audience=coderclaw");
      res.writeHead(ok ? 200 : 403, { "content-type": "application/json" }).end(JSON.stringify(ok ? { value: jwt } : { message: "no" }));
    });
    await new Promise<void>((resolve) => tokenService.listen(0, "127.0.0.1", resolve));
    try {
      writeFileSync(join(dir.path, "run.sh"), script);
      // npx stands in for the registry download: the CLI built from this checkout.
      writeFileSync(join(dir.path, "npx"), `#!/bin/sh\nshift 2\nexec "${process.execPath}" "${cli}" "$@"\n`);
      chmodSync(join(dir.path, "npx"), 0o755);
      const runAction = (task: string, agent: string): Promise<{ code: number; stdout: string; stderr: string; outputs: string }> => {
        const outputs = join(dir.path, `outputs-${agent}`);
        writeFileSync(outputs, "");
        const env = {
          PATH: `${dir.path}:${process.env["PATH"] ?? ""}`,
          HOME: dir.path,
          CODERCLAW_HOME: join(dir.path, "home"),
          GITHUB_OUTPUT: outputs,
          GITHUB_ACTION_PATH: process.cwd(),
          ACTIONS_ID_TOKEN_REQUEST_URL: `http://127.0.0.1:${(tokenService.address() as AddressInfo).port}/token?api-version=2.0`,
          ACTIONS_ID_TOKEN_REQUEST_TOKEN: "runner-request-token",
          CC_TASK: task,
          CC_AGENT: agent,
          CC_DESCRIPTION: "workflow run",
          CC_MODE: "remote-enabled",
          CC_SERVER: server.url,
          CC_TOKEN: "",
          CC_AUDIENCE: AUDIENCE,
          CC_VERSION: "",
        };
        return new Promise((resolve) => {
          execFile("bash", [join(dir.path, "run.sh")], { env, timeout: 60_000 }, (err, stdout, stderr) =>
            resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr, outputs: readFileSync(outputs, "utf8") }),
          );
        });
      };

      const passed = await runAction("lint $(rm -rf /) ok", "echo");
      expect(passed.code, passed.stderr).toBe(0);
      expect(passed.stdout).toContain(`::add-mask::${jwt}`);
      expect(passed.outputs).toMatch(/^status=completed$/m);
      const taskId = /^task-id=(.+)$/m.exec(passed.outputs)?.[1] ?? "";
      expect(await engine.adapter.getTaskState(taskId)).toMatchObject({ status: "completed", output: "lint $(rm -rf /) ok", description: "workflow run" });

      const failed = await runAction("not-a-duration", "sleep");
      expect(failed.code, failed.stderr).toBe(1);
      expect(failed.outputs).toMatch(/^status=failed$/m);
    } finally {
      await new Promise<void>((resolve) => tokenService.close(() => resolve()));
      dir.remove();
    }
  });

  it("refuses OIDC tokens from another repository, expired ones, and garbage, with 401 and a JSON body", async () => {
    for (const token of [await githubToken({ repository: "evil/fork" }), await githubToken({}, "-1m"), "a.b.c", "cc1.forged.token"]) {
      const answer = await request(server.url, "GET", "/v1/status", { token });
      expect(answer.status, token).toBe(401);
      expect(answer.body).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
    }
    expect(await service.getAuditLog({ action: "auth.login", result: "denied" })).not.toHaveLength(0);
  });

  it("accepts session tokens opened for this node's device only, and enforces roles and session isolation", async () => {
    const dev = await service.createSession("dev", node.peerId, ["developer"]);
    const reader = await service.createSession("reader", node.peerId, ["readonly"]);
    const laptop = await service.createSession("dev", generateSigner().peerId, ["developer"]);

    const devClient = new HTTPTransportAdapter({ baseUrl: server.url, token: dev.token });
    const task = await devClient.submitTask({ description: "dev work", input: "x", agentId: "echo" });
    expect(task.sessionId).toBe(dev.id);

    const readerClient = new HTTPTransportAdapter({ baseUrl: server.url, token: reader.token });
    expect(await codeOf(readerClient.submitTask({ description: "d", input: "x" }))).toBe("PERMISSION_DENIED");
    expect(await codeOf(readerClient.getTaskState(task.id))).toBe("PERMISSION_DENIED");
    expect((await readerClient.listTasks()).map((t) => t.id)).not.toContain(task.id);

    expect(await codeOf(new HTTPTransportAdapter({ baseUrl: server.url, token: laptop.token }).listAgents())).toBe("UNAUTHENTICATED");

    const admin = await service.createSession(owner.peerId, node.peerId, ["admin"]);
    const audit = await request(server.url, "GET", "/v1/audit?action=task.submit", { token: admin.token });
    expect(audit.status).toBe(200);
    expect((audit.body as { entries: { body: { userId: string } }[] }).entries.map((e) => e.body.userId)).toContain("dev");
    expect((await request(server.url, "GET", "/v1/audit", { token: dev.token })).status).toBe(403);
  });
  it("ends a revoked session's open event stream with an UNAUTHENTICATED error, as it refuses its next request", async () => {
    // A stream is one long request: without this a revoked dashboard kept a task's output, or every approval request, flowing.
    const streaming = await createHttpServer({ adapter: engine.adapter, sseHeartbeatMs: 50, ...securityHttpHooks(service, { deviceId: node.peerId }) });
    try {
      const session = await service.createSession("dev", node.peerId, ["developer"]);
      const id = await engine.startManual(session.id);
      const sse = openSse(streaming.url, `/v1/tasks/${id}/events`, session.token);
      await sse.next(1);
      expect(streaming.sseStreams()).toBe(1);
      await service.revokeSession(session.id, { userId: "admin" }, "laptop lost");
      const ended = await Promise.race([sse.ended.then(() => "ended"), new Promise((r) => setTimeout(() => r("still open"), 3000))]);
      expect(ended).toBe("ended");
      expect(sse.frames.at(-1)?.event).toBe("error");
      expect(JSON.parse(sse.frames.at(-1)!.data)).toMatchObject({ error: { code: "UNAUTHENTICATED" } });
      expect(streaming.sseStreams()).toBe(0);
      engine.controller.complete(id, "done");
    } finally {
      await streaming.close();
    }
  });
});
