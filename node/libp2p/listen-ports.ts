import { readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { networkInterfaces } from "node:os";
import { z } from "zod";
import { writeFileAtomic } from "../../identity/index.js";

/**
 * A listen address with port 0 gets a port from the operating system, a new
 * one at each start. Invites and members' address books name that port, so a
 * node restarted before its invite is used, or while a member is away, would
 * be looked for where it no longer listens. The port chosen is therefore kept
 * in the home and asked for again at the next start, when it is still free.
 */

const MAX_FILE_BYTES = 64 * 1024;
const MAX_ENTRIES = 32;
/** `/ip4/<host>/tcp/0` or `/ip6/<host>/tcp/0`: the listen addresses whose port is the system's choice. */
const ANY_PORT = /^\/(ip4|ip6)\/([^/]+)\/tcp\/0$/;

const fileSchema = z.strictObject({
  version: z.literal(1),
  /** Port given last time, by the listen address as asked (`/ip4/127.0.0.1/tcp/0`). */
  ports: z.record(z.string().max(128).regex(ANY_PORT), z.number().int().min(1).max(65_535)).refine((p) => Object.keys(p).length <= MAX_ENTRIES, `at most ${MAX_ENTRIES} entries`),
});
type PortsFile = z.infer<typeof fileSchema>;

/** Options of {@link listenWithKeptPorts} and {@link keepListenPorts}. */
export interface ListenPortsOptions {
  /** Where the ports are kept (in the node's home). */
  file: string;
  /** Told of a file that cannot be used; the node then listens as asked. */
  onError?: (error: Error) => void;
}

async function readPorts(options: ListenPortsOptions): Promise<PortsFile["ports"]> {
  let text: string;
  try {
    const bytes = await readFile(options.file);
    if (bytes.byteLength > MAX_FILE_BYTES) throw new Error(`over ${MAX_FILE_BYTES} bytes`);
    text = bytes.toString("utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") options.onError?.(new Error(`${options.file}: ${(err as Error).message}; listening on the ports the system gives`));
    return {};
  }
  try {
    return fileSchema.parse(JSON.parse(text)).ports;
  } catch (err) {
    const detail = err instanceof z.ZodError ? err.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ") : (err as Error).message;
    options.onError?.(new Error(`${options.file} is not a listen-ports file (${detail}); listening on the ports the system gives`));
    return {};
  }
}

/** Whether `port` on `host` can be listened on now (nobody else holds it). */
function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen({ host, port, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

/**
 * `listen` with each port-0 address replaced by the port it was given last
 * time, where that port is free now; an address whose port is taken is left
 * at 0 (a new port, and so new addresses for invites) rather than failing.
 */
export async function listenWithKeptPorts(listen: readonly string[], options: ListenPortsOptions): Promise<string[]> {
  const kept = await readPorts(options);
  return Promise.all(
    listen.map(async (addr) => {
      const m = ANY_PORT.exec(addr);
      const port = kept[addr];
      if (m === null || port === undefined) return addr;
      return (await portFree(m[2] as string, port)) ? `/${m[1]}/${m[2]}/tcp/${port}` : addr;
    }),
  );
}

function samePorts(a: PortsFile["ports"], b: PortsFile["ports"]): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/**
 * Keep the ports the system gave the port-0 addresses of `listen`, read from
 * the addresses the node listens on (`bound`: `/ip4/<ip>/tcp/<port>`, as
 * libp2p reports them, among them addresses a router maps, which may differ
 * in port). A wildcard host (0.0.0.0, ::) takes the port of an address of
 * this machine's interfaces.
 */
export async function keepListenPorts(listen: readonly string[], bound: readonly string[], options: ListenPortsOptions): Promise<void> {
  const ports: PortsFile["ports"] = {};
  // A port asked for by number belongs to its own address, even where a wildcard address lists it too.
  const asked = new Set(listen.flatMap((a) => /\/tcp\/(\d+)$/.exec(a)?.[1] ?? []).filter((p) => p !== "0"));
  const own = new Set(Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address)));
  for (const addr of listen) {
    const m = ANY_PORT.exec(addr);
    if (m === null) continue;
    const [, family, host] = m as unknown as [string, "ip4" | "ip6", string];
    const wildcard = host === "0.0.0.0" || host === "::";
    const match = bound
      .map((b) => /^\/(ip4|ip6)\/([^/]+)\/tcp\/(\d+)(\/p2p\/[^/]+)?$/.exec(b))
      .find((b) => b !== null && b[1] === family && !asked.has(b[3] as string) && (wildcard ? own.has(b[2] as string) : b[2] === host));
    if (match) ports[addr] = Number(match[3]);
  }
  if (Object.keys(ports).length === 0) return;
  // Most starts get the ports they asked for: no fsync'd rewrite of what the file already says.
  if (samePorts(await readPorts({ file: options.file }), ports)) return;
  await writeFileAtomic(options.file, JSON.stringify({ version: 1, ports } satisfies PortsFile) + "\n");
}
