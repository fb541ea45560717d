import net from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createHttpServer } from "../../node/http/index.js";
import { CodeUploads } from "../../node/workspaces/code-uploads.js";
import { encodeBlobFrames } from "../../src/workspace/blob-frames.js";
import { openBlobStore } from "../../src/workspace/blob-store.js";
import { blobDigest } from "../../src/workspace/manifest.js";
import { tempDir } from "../helpers/temp-dir.js";
import { openEngine } from "./engine.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A server taking uploads into a real store, each bearer token its own session. */
async function serve(): Promise<{ url: string; port: number }> {
  const engine = await openEngine();
  cleanups.push(() => engine.close());
  const home = tempDir("cc-upload-routes-");
  cleanups.push(() => home.remove());
  const store = await openBlobStore({ dir: join(home.path, "blobs"), fsync: false });
  cleanups.push(() => store.close());
  const uploads = new CodeUploads({ store, adopt: () => Promise.reject(new Error("not here")) });
  const server = await createHttpServer({
    adapter: engine.adapter,
    authenticate: (token) => ({ session: token }),
    sessionIdOf: (ctx) => ctx.session,
    uploads: { missing: (c, d) => uploads.missing(c, d), put: (c, b) => uploads.put(c, b), putTree: (c, t, i) => uploads.putTree(c, t, i), submit: () => Promise.reject(new Error("not here")) },
    port: 0,
  });
  cleanups.push(() => server.close());
  return server;
}

/** A body (of blobs unless told) begun as `token` and never finished: it holds its place among those being received. */
function stalled(port: number, token: string, request = "POST /v1/blobs", type = "application/octet-stream"): Promise<net.Socket> {
  return new Promise((resolve) => {
    const socket = net.connect(port, "127.0.0.1", () => {
      socket.write(`${request} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${token}\r\nContent-Type: ${type}\r\nContent-Length: 1000\r\n\r\n`);
      resolve(socket);
    });
    socket.on("error", () => undefined);
    cleanups.push(() => socket.destroy());
  });
}

describe("bodies of blobs being received", () => {
  it("are counted per session too: one session's stalled bodies do not keep every other session from sending, and close frees their places", async () => {
    const server = await serve();
    const held = await Promise.all(Array.from({ length: 8 }, () => stalled(server.port, "mallory")));
    const blob = new TextEncoder().encode("a file");
    const send = (token: string): Promise<Response> =>
      fetch(`${server.url}/v1/blobs`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/octet-stream" }, body: encodeBlobFrames([[blobDigest(blob), blob]]) });
    // Received at once (the route's hooks run before its body is read): mallory holds what places it was given.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await send("alice")).status).toBe(200);
    const refused = await send("mallory");
    expect(refused.status).toBe(503);
    expect(await refused.text()).toMatch(/this session is sending 2 uploads already/);
    for (const socket of held) socket.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await send("mallory")).status).toBe(200);
  });

  it("count a session's questions of what is missing and its trees too, whose bodies are held whole as well", async () => {
    const server = await serve();
    await Promise.all([stalled(server.port, "mallory", `PUT /v1/trees/${"ab".repeat(32)}`), stalled(server.port, "mallory", "POST /v1/blobs/missing", "application/json")]);
    await new Promise((resolve) => setTimeout(resolve, 300));
    const ask = (token: string): Promise<Response> => fetch(`${server.url}/v1/blobs/missing`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ digests: [] }) });
    expect((await ask("mallory")).status).toBe(503);
    expect((await ask("alice")).status).toBe(200);
  });
});
