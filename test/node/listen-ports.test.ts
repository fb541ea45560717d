import { readFileSync, statSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../../node/create-node.js";
import { keepListenPorts, listenWithKeptPorts } from "../../node/libp2p/listen-ports.js";
import { tempDir } from "../helpers/temp-dir.js";

/** A node listening on port 0 listens on the same port after a restart, so an invite made before the restart still reaches it. */

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function home(): string {
  const d = tempDir("cc-ports-");
  cleanups.push(d.remove);
  return d.path;
}

async function start(dataDir: string, errors: string[] = []): Promise<CoderClawNode> {
  const node = await createNode({ dataDir, mdns: false, agents: createBuiltinRegistry([]), onError: (where, err) => errors.push(`${where}: ${err.message}`) });
  cleanups.push(() => node.stop());
  return node;
}

const portOf = (node: CoderClawNode): number => Number(/\/tcp\/(\d+)/.exec(node.multiaddrs()[0]!)![1]);

describe("listen ports kept across restarts", () => {
  it("an invite made before the founder restarts is still good after it: the founder listens where the invite says", async () => {
    const aHome = home();
    let a = await start(aHome);
    await a.createMesh("ports");
    const { invite } = await a.pairing.invite("trusted", 60_000);
    const before = portOf(a);
    await a.stop();
    a = await start(aHome);
    expect(portOf(a)).toBe(before);
    const b = await start(home());
    await b.pairing.join(invite);
    expect(b.membership.isMember(a.peerId)).toBe(true);
  }, 60_000);

  it("takes a new port when the kept one is taken, and keeps the new one", async () => {
    const aHome = home();
    const a = await start(aHome);
    const first = portOf(a);
    await a.stop();
    const squatter: Server = createServer();
    await new Promise<void>((resolve) => squatter.listen({ host: "127.0.0.1", port: first }, resolve));
    cleanups.push(() => new Promise((resolve) => squatter.close(resolve)));
    const again = await start(aHome);
    const second = portOf(again);
    expect(second).not.toBe(first);
    const kept = JSON.parse(readFileSync(join(aHome, "identity", "listen-ports.json"), "utf8")) as { ports: Record<string, number> };
    expect(kept.ports).toEqual({ "/ip4/127.0.0.1/tcp/0": second });
  }, 60_000);

  it("refuses a kept-ports file that is not one, saying what is wrong and where, and listens as asked", async () => {
    const dir = home();
    const file = join(dir, "listen-ports.json");
    const errors: string[] = [];
    for (const [text, says] of [
      ["{", "is not a listen-ports file"],
      [JSON.stringify({ version: 1, ports: { "/ip4/127.0.0.1/tcp/0": 70_000 } }), "ports./ip4/127.0.0.1/tcp/0"],
      [JSON.stringify({ version: 1, ports: { "/dns4/evil/tcp/0": 80 } }), "ports./dns4/evil/tcp/0"],
      ["x".repeat(70_000), "over 65536 bytes"],
    ] as const) {
      writeFileSync(file, text);
      errors.length = 0;
      expect(await listenWithKeptPorts(["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/4999"], { file, onError: (e) => errors.push(e.message) })).toEqual(["/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/tcp/4999"]);
      expect(errors.join()).toContain(says);
      expect(errors.join()).toContain(file);
    }
  });

  it("keeps only ports of port-0 addresses, and for a wildcard one a port of this machine's interfaces, not a router's mapping nor another address's port", async () => {
    const file = join(home(), "listen-ports.json");
    await keepListenPorts(
      ["/ip4/0.0.0.0/tcp/0", "/ip4/127.0.0.1/tcp/4001"],
      ["/ip4/203.0.113.7/tcp/61000/p2p/12D3KooWQ", "/ip4/127.0.0.1/tcp/4001/p2p/12D3KooWQ", "/ip4/127.0.0.1/tcp/35000/p2p/12D3KooWQ"],
      { file },
    );
    expect((JSON.parse(readFileSync(file, "utf8")) as { ports: unknown }).ports).toEqual({ "/ip4/0.0.0.0/tcp/0": 35000 });
  });

  it("leaves the file alone when the ports are those it already holds, and rewrites it when one changed", async () => {
    const file = join(home(), "listen-ports.json");
    const keep = (port: number) => keepListenPorts(["/ip4/127.0.0.1/tcp/0"], [`/ip4/127.0.0.1/tcp/${port}/p2p/12D3KooWQ`], { file });
    await keep(35001);
    const first = statSync(file).ino;
    await keep(35001);
    expect(statSync(file).ino).toBe(first);
    await keep(35002);
    expect(statSync(file).ino).not.toBe(first);
    expect((JSON.parse(readFileSync(file, "utf8")) as { ports: unknown }).ports).toEqual({ "/ip4/127.0.0.1/tcp/0": 35002 });
  });
});
