import { generateKeyPair } from "@libp2p/crypto/keys";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { afterEach, describe, expect, it } from "vitest";
import type { MeshLibp2p } from "../../node/libp2p/create-libp2p.js";
import { createCapabilityDirectory, type CapabilityDirectory, type CapabilityDirectoryOptions, type LocalCapabilities } from "../../node/routing/index.js";
import {
  nodeRecordKey,
  openNodeRecord,
  selectNodeRecord,
  signNodeRecord,
  validateNodeRecord,
  type NodeRecord,
} from "../../protocols/capability/index.js";
import { MalformedFrameError } from "../../protocols/framing/index.js";
import { eventually } from "../helpers/mesh.js";
import { connect, connectAll, startNodes, stopAll } from "./helpers.js";

let nodes: MeshLibp2p[] = [];
let directories: CapabilityDirectory[] = [];
afterEach(async () => {
  await Promise.allSettled(directories.map((d) => d.stop()));
  await stopAll(nodes);
  nodes = [];
  directories = [];
});

const base = (peerId: string, seq: number): NodeRecord => ({
  peerId,
  agents: ["echo"],
  skills: [],
  capabilities: ["shell"],
  load: 0,
  maxConcurrency: 4,
  version: "0.1.0",
  seq,
  updatedAt: 1_700_000_000_000 + seq,
});

describe("signed node records", () => {
  it("validate only under their own key and when signed by that peer", async () => {
    const key = await generateKeyPair("Ed25519");
    const other = await generateKeyPair("Ed25519");
    const peerId = peerIdFromPrivateKey(key).toString();
    const good = await signNodeRecord(base(peerId, 1), key);
    await expect(validateNodeRecord(nodeRecordKey(peerId), good.bytes)).resolves.toBeUndefined();
    expect((await openNodeRecord(good.bytes)).record).toEqual(base(peerId, 1));

    const forged = await signNodeRecord(base(peerId, 2), other);
    await expect(validateNodeRecord(nodeRecordKey(peerId), forged.bytes)).rejects.toBeInstanceOf(MalformedFrameError);
    const otherId = peerIdFromPrivateKey(other).toString();
    await expect(validateNodeRecord(nodeRecordKey(otherId), good.bytes)).rejects.toThrow(/foreign key/);
    const tampered = good.bytes.slice();
    tampered[tampered.length - 70] = (tampered[tampered.length - 70] ?? 0) ^ 1;
    await expect(validateNodeRecord(nodeRecordKey(peerId), tampered)).rejects.toBeInstanceOf(MalformedFrameError);
  });

  it("select the newest record and never an undecodable one", async () => {
    const key = await generateKeyPair("Ed25519");
    const peerId = peerIdFromPrivateKey(key).toString();
    const records = await Promise.all([3, 9, 5].map(async (seq) => (await signNodeRecord(base(peerId, seq), key)).bytes));
    expect(selectNodeRecord(nodeRecordKey(peerId), [new Uint8Array([1, 2]), ...records])).toBe(2);
  });

  it("carry labels and resources signed, still validate without them (an older node's record), and refuse malformed ones", async () => {
    const key = await generateKeyPair("Ed25519");
    const peerId = peerIdFromPrivateKey(key).toString();
    const older = await openNodeRecord((await signNodeRecord(base(peerId, 1), key)).bytes);
    expect([older.record.labels, older.record.resources]).toEqual([undefined, undefined]);
    const placed = { ...base(peerId, 2), labels: ["gpu", "macos"], resources: { cpu: 8, memoryGiB: 0.5 } };
    const signed = await signNodeRecord(placed, key);
    await expect(validateNodeRecord(nodeRecordKey(peerId), signed.bytes)).resolves.toBeUndefined();
    expect((await openNodeRecord(signed.bytes)).record).toEqual(placed);
    for (const bad of [
      { labels: ["has space"] },
      { labels: Array.from({ length: 33 }, (_, i) => `l${i}`) },
      { resources: { cpu: -1 } },
      { resources: Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`r${i}`, 1])) },
    ]) {
      await expect(signNodeRecord({ ...base(peerId, 3), ...bad }, key)).rejects.toThrow();
    }
  });
});

describe("capability directory", () => {
  async function mesh(n: number, offers: (i: number) => Partial<LocalCapabilities>, members?: (i: number, peer: string) => boolean, extra: Partial<CapabilityDirectoryOptions> = {}) {
    const keys = await Promise.all(Array.from({ length: n }, () => generateKeyPair("Ed25519")));
    nodes = await startNodes(n, { keys });
    directories = await Promise.all(
      nodes.map(async (node, i) =>
        createCapabilityDirectory({
          libp2p: node,
          privateKey: keys[i] as (typeof keys)[number],
          local: () => ({ agents: [], skills: [], capabilities: [], load: i, maxConcurrency: 4, ...offers(i) }),
          version: "0.1.0",
          isMember: (peer) => members?.(i, peer) ?? true,
          refreshMs: 3_600_000,
          ...extra,
        }),
      ),
    );
    return nodes.map((node) => node.peerId.toString());
  }

  it("finds the one node of five that has an agent by asking connected members", async () => {
    const ids = await mesh(5, (i) => (i === 3 ? { agents: ["claude-coder", "echo"] } : { agents: ["echo"] }));
    await connectAll(nodes);
    const [first] = directories;
    const found = await first!.findAgent("claude-coder", { timeoutMs: 5_000 });
    expect(found.map((c) => c.peerId)).toEqual([ids[3]]);
    expect(found[0]?.record.load).toBe(3);
    expect(found[0]?.source).toBe("direct");
    expect(found[0]?.latencyMs).toBeGreaterThan(0);

    const echo = await first!.findAgent("echo", { timeoutMs: 5_000 });
    expect(echo.map((c) => c.peerId).sort()).toEqual([...ids].sort());
    expect(echo.find((c) => c.local)?.peerId).toBe(ids[0]);
    expect(await first!.findAgent("nobody-has-this", { strategy: "direct", timeoutMs: 5_000 })).toEqual([]);
  });

  it("finds a node through DHT provider and node records when it is not connected", async () => {
    // Node 3 does not answer node 0 over the caps protocol, so node 0 must read its signed record from the DHT.
    const ids: string[] = await mesh(4, (i) => (i === 3 ? { agents: ["reviewer"], skills: ["git"] } : {}), (i, peer) => !(i === 3 && peer === ids[0]));
    // A line 0-1-2-3: node 0 has no connection to node 3 and must go through the DHT.
    await connect(nodes[0]!, nodes[1]!);
    await connect(nodes[1]!, nodes[2]!);
    await connect(nodes[2]!, nodes[3]!);
    await new Promise((r) => setTimeout(r, 500));
    await Promise.all(directories.map((d) => d.publish()));
    const found = await directories[0]!.findAgent("reviewer", { strategy: "dht", timeoutMs: 10_000 });
    expect(found.map((c) => c.peerId)).toEqual([ids[3]]);
    expect(found[0]?.source).toBe("dht");
    expect(found[0]?.record.skills).toEqual(["git"]);
    const bySkill = await directories[1]!.find("skill", "git", { strategy: "dht", timeoutMs: 10_000 });
    expect(bySkill.map((c) => c.peerId)).toEqual([ids[3]]);
  });

  it("watches members' records: past directAskMax they are still found without the DHT, and a changed offer arrives within about a second, unasked", async () => {
    const offered: string[][] = [["echo"], ["echo"], ["echo"], ["echo", "reviewer"], ["echo"]];
    const ids = await mesh(5, (i) => ({ agents: offered[i]! }), undefined, { directAskMax: 0, pushMs: 200 });
    await connectAll(nodes);
    const [first] = directories;
    // The first look asks (and starts watching) every member.
    expect((await first!.members()).length).toBe(4);
    await new Promise((r) => setTimeout(r, 300));
    const reviewers = await first!.findAgent("reviewer", { timeoutMs: 2_000 });
    expect(reviewers.map((c) => [c.peerId, c.source])).toEqual([[ids[3], "direct"]]);
    offered[1] = ["echo", "reviewer"];
    offered[3] = ["echo"];
    const started = Date.now();
    let now: string[] = [];
    while (Date.now() - started < 3_000) {
      now = (await first!.findAgent("reviewer", { strategy: "direct", timeoutMs: 500 })).map((c) => c.peerId);
      if (now.length === 1 && now[0] === ids[1]) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(now).toEqual([ids[1]]);
  });

  it("puts an unchanged record to the DHT once, not at every refresh; a changed one at the next refresh", async () => {
    const load = [0, 0];
    await mesh(2, (i) => ({ agents: ["echo"], load: load[i]! }), undefined, { refreshMs: 100 });
    await connectAll(nodes);
    const dht = nodes[1]!.services.dht;
    const put = dht.put.bind(dht);
    let puts = 0;
    dht.put = (...args: Parameters<typeof put>) => {
      puts++;
      return put(...args);
    };
    await new Promise((r) => setTimeout(r, 1200));
    expect(puts).toBe(0);
    load[1] = 3;
    await eventually(() => puts > 0, 10_000, "the changed record put");
    expect(puts).toBe(1);
    await new Promise((r) => setTimeout(r, 600));
    expect(puts).toBe(1);
  });

  it("does not answer non-members", async () => {
    const ids = await mesh(2, () => ({ agents: ["echo"] }), (i, peer) => i === 1 && peer === ids[0] ? false : true);
    await connect(nodes[0]!, nodes[1]!);
    const found = await directories[0]!.findAgent("echo", { strategy: "direct", excludeLocal: true, timeoutMs: 2_000 });
    expect(found).toEqual([]);
  });
});
