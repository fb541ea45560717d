import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import { z } from "zod";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import type { HttpRequestInfo } from "./server.js";

/**
 * Strict policy: only the node's own scripts, styles and API; no inline code, no
 * framing, no forms posting elsewhere. The dashboard needs nothing more.
 */
export const DASHBOARD_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/** How long a login link works; long enough to click, short enough that a leaked one is stale. */
export const LOGIN_LINK_TTL_MS = 60_000;
const MAX_PENDING_LINKS = 1000;
/** Unused links one token may have: any token's holder could otherwise fill the pool, and `coderclaw ui` was refused. */
const MAX_PENDING_LINKS_PER_TOKEN = 10;

const ASSETS: Record<string, string> = {
  "app.js": "text/javascript; charset=utf-8",
  "app.css": "text/css; charset=utf-8",
};

/** Parts of the bundle loaded on demand (esbuild's content-hashed chunk names). */
const CHUNK = /^chunk-[A-Z0-9]{8}\.js$/;

const CodeSchema = z.strictObject({ code: z.string().regex(/^[A-Za-z0-9_-]{20,64}$/, "must be a login code") });

/** What the dashboard routes need of the server they are added to. */
export interface UiRouteDeps {
  /** Accepts a bearer token (throws when it is not valid): a login link is only minted for a working session. */
  authenticate: (token: string, request: HttpRequestInfo) => unknown;
  /** Folder with index.html and the bundled assets; default the build's `dist/ui`. */
  dir?: string;
  /** Clock, for expiry. */
  now?: () => number;
}

/**
 * `npm run build` bundles `ui/src` into `dist/ui`; this module runs from `dist/node/http`
 * once built, and from `node/http` under the tests, which serve the same build.
 */
function builtUiDir(): string {
  const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");
  return basename(root) === "dist" ? join(root, "ui") : join(root, "dist", "ui");
}

/**
 * Serves the dashboard at `/` and `/ui/*`, and the one-time login links:
 * `POST /ui/login-link` (bearer-authenticated) returns a code that
 * `POST /ui/login` exchanges once, within {@link LOGIN_LINK_TTL_MS}, for that token.
 */
export function registerUiRoutes(app: FastifyInstance, deps: UiRouteDeps): void {
  const dir = deps.dir ?? builtUiDir();
  const now = deps.now ?? Date.now;
  const pending = new Map<string, { token: string; expiresAt: number }>();
  const files = new Map<string, Buffer>();
  const read = (name: string): Buffer => {
    let bytes = files.get(name);
    if (bytes === undefined) {
      try {
        bytes = readFileSync(join(dir, name));
      } catch (err) {
        throw new CoderClawError("NOT_FOUND", `dashboard asset ${name} is missing; run npm run build`, { cause: err });
      }
      files.set(name, bytes);
    }
    return bytes;
  };
  const send = (reply: FastifyReply, name: string, type: string): FastifyReply =>
    reply
      .header("content-security-policy", DASHBOARD_CSP)
      .header("x-content-type-options", "nosniff")
      .header("referrer-policy", "no-referrer")
      .header("cache-control", "no-cache")
      .type(type)
      .send(read(name));

  app.get("/", async (_request, reply) => send(reply, "index.html", "text/html; charset=utf-8"));
  app.get<{ Params: { name: string } }>("/ui/:name", async (request, reply) => {
    const type = ASSETS[request.params.name] ?? (CHUNK.test(request.params.name) ? ASSETS["app.js"] : undefined);
    if (type === undefined) throw new CoderClawError("NOT_FOUND", `no dashboard asset ${request.params.name.slice(0, 100)}`);
    return send(reply, request.params.name, type);
  });

  const sweep = (): void => {
    const t = now();
    for (const [code, link] of pending) if (link.expiresAt <= t) pending.delete(code);
  };

  app.post("/ui/login-link", async (request) => {
    const match = /^Bearer[ ]+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
    if (!match) throw new CoderClawError("UNAUTHENTICATED", "missing bearer token (Authorization: Bearer <token>)");
    try {
      await deps.authenticate(match[1]!, { remoteAddress: request.socket.remoteAddress ?? "", secure: request.protocol === "https" });
    } catch (err) {
      throw new CoderClawError("UNAUTHENTICATED", "invalid token", { cause: err });
    }
    sweep();
    let mine = 0;
    for (const link of pending.values()) if (link.token === match[1]) mine++;
    if (mine >= MAX_PENDING_LINKS_PER_TOKEN) throw new CoderClawError("UNAVAILABLE", `this token has ${mine} unused login links; wait a minute`);
    if (pending.size >= MAX_PENDING_LINKS) throw new CoderClawError("UNAVAILABLE", "too many unused login links; wait a minute");
    const code = randomBytes(24).toString("base64url");
    const expiresAt = now() + LOGIN_LINK_TTL_MS;
    pending.set(code, { token: match[1]!, expiresAt });
    return { code, expiresAt: new Date(expiresAt).toISOString() };
  });

  app.post("/ui/login", async (request) => {
    const { code } = parseInput(CodeSchema, request.body);
    const link = pending.get(code);
    // Single use: the code is gone from here on, whether it worked or had expired.
    pending.delete(code);
    if (link === undefined) throw new CoderClawError("UNAUTHENTICATED", "login link unknown or already used; run coderclaw ui again");
    if (link.expiresAt <= now()) throw new CoderClawError("UNAUTHENTICATED", "login link expired; run coderclaw ui again");
    return { token: link.token };
  });
}
