import "../src/polyfills.js";
import * as A from "@automerge/automerge";
import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { createMeshLibp2p, type MeshLibp2p } from "../node/libp2p/create-libp2p.js";
import { createCapabilityDirectory, type CapabilityDirectory } from "../node/routing/capability-directory.js";
import { createSyncEngine, type SyncEngine } from "../node/sync/sync-engine.js";
import { createReplicaAuthority, type ReplicaAuthority, type WriterRule } from "../protocols/sync/replica-authority.js";
import { deviceIdentityFromSeed, type DeviceIdentity } from "../identity/index.js";
import { randomBytes } from "node:crypto";
import { createMessageCodec } from "../protocols/framing/codec.js";
import { ChannelPool, handleFramed } from "../protocols/framing/pool.js";
import { openDatabase, type Database } from "../src/storage/level-database.js";
import { LevelDocumentStore } from "../src/storage/level-document-store.js";
import { percentile, printResult, SMOKE, sized } from "./report.js";
import { measureRoutedTasks } from "./mesh-routed.js";
import { RAW_ECHO_PROTOCOL, rawRoundTrips, serveRawEcho } from "./raw-echo.js";
import { builtBenchScript } from "./built-script.js";

type Task = { status: A.ImmutableString; note: A.ImmutableString; progress: number; owner: A.ImmutableString };

/** Bench documents name their writer in `owner`. */
const OWNER_RULE: WriterRule = { prefix: "task/", writerOf: (_id, root) => (typeof root("owner") === "string" ? (root("owner") as string) : undefined) };

/**
 * The baseline of signed replication: the same protocol with a signature nobody
 * makes or checks, so the ratio is the cost of signing and verifying alone.
 */
function unsignedAuthority(writer: string): ReplicaAuthority {
  const sig = new Uint8Array(64);
  return {
    replicates: (id) => id.startsWith("task/"),
    signaturesFor: (items) => items.map(({ heads }) => ({ writer, heads: [...heads], sig, index: 0, size: 1, proof: [] })),
    screen: () => undefined,
    judge: () => undefined,
    recordOps: () => [],
    held: () => undefined,
    checkStored: () => undefined,
  };
}

async function startNode(privateKey?: PrivateKey, admit: (peer: string) => boolean = () => true): Promise<MeshLibp2p> {
  return createMeshLibp2p({
    privateKey: privateKey ?? (await generateKeyPair("Ed25519")),
    mdns: false,
    admit,
    inboundConnectionThreshold: 10_000,
  });
}

async function dial(a: MeshLibp2p, b: MeshLibp2p): Promise<void> {
  const addr = b.getMultiaddrs()[0];
  if (addr === undefined) throw new Error("no listen address");
  await a.dial(addr, { signal: AbortSignal.timeout(10_000) });
}

async function until(check: () => Promise<boolean>, timeoutMs: number, pollMs = 2): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!(await check())) {
    if (performance.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, pollMs));
  }
}

/** Round trips on one open stream: raw bytes echoed, and typed messages through a FramedChannel. */
async function roundTrips(count: number): Promise<Record<string, number>> {
  const [a, b] = await Promise.all([startNode(), startNode()]);
  try {
    await dial(a, b);
    await serveRawEcho(b);
    const rawLatencies = await rawRoundTrips(await a.dialProtocol(b.peerId, RAW_ECHO_PROTOCOL), count);

    const codec = createMessageCodec({ version: 1, schema: z.object({ n: z.number().int(), id: z.string() }) });
    await handleFramed(b, "/bench/framed/1.0.0", {
      codec,
      accept: () => true,
      onChannel: (channel) => {
        void (async () => {
          for await (const msg of channel) await channel.send(msg);
        })().catch(() => undefined);
      },
    });
    const pool = new ChannelPool({ libp2p: a, protocol: "/bench/framed/1.0.0", codec });
    const framedLatencies: number[] = [];
    for (let n = 0; n < count; n++) {
      const t0 = performance.now();
      const channel = await pool.get(b.peerId);
      await channel.send({ n, id: "00000000-0000-4000-8000-000000000000" });
      await channel.receive({ timeoutMs: 5_000 });
      framedLatencies.push(performance.now() - t0);
    }
    await pool.close();
    return {
      raw_stream_rtt_p50_ms: percentile(rawLatencies.slice(count / 10), 50),
      raw_stream_rtt_p99_ms: percentile(rawLatencies.slice(count / 10), 99),
      framed_channel_rtt_p50_ms: percentile(framedLatencies.slice(count / 10), 50),
      framed_channel_rtt_p99_ms: percentile(framedLatencies.slice(count / 10), 99),
    };
  } finally {
    await Promise.allSettled([a.stop(), b.stop()]);
  }
}

interface SyncPeer {
  node: MeshLibp2p;
  db: Database;
  store: LevelDocumentStore;
  engine: SyncEngine;
  dir: string;
}

/**
 * Two nodes share `docs` task documents, are cut apart, one side changes every
 * document, then they redial. The figure is redial -> identical summaries; the
 * baseline is Automerge's own sync of the same documents in memory, both sides
 * already loaded, no network and no storage.
 */
async function reconnectSync(docs: number, signed: boolean): Promise<Record<string, number>> {
  let partitioned = false;
  const peers: SyncPeer[] = [];
  const identities: DeviceIdentity[] = [deviceIdentityFromSeed(randomBytes(32)), deviceIdentityFromSeed(randomBytes(32))];
  for (const identity of identities) {
    const node = await startNode(identity.privateKey, () => !partitioned);
    const dir = mkdtempSync(join(tmpdir(), "coderclaw-bench-mesh-"));
    const db = await openDatabase(dir);
    const store = new LevelDocumentStore(db, { path: dir });
    const authority = signed ? createReplicaAuthority({ identity, db, rules: [OWNER_RULE], mayWrite: () => true }) : unsignedAuthority(identities[0]!.peerId);
    const engine = await createSyncEngine({ libp2p: node, store, authority, isMember: () => true });
    peers.push({ node, db, store, engine, dir });
  }
  const [a, b] = peers as [SyncPeer, SyncPeer];
  const owner = new A.ImmutableString(identities[0]!.peerId);
  try {
    const ids = Array.from({ length: docs }, (_, i) => `task/${String(i).padStart(8, "0")}-bench`);
    await Promise.all(
      ids.map((id) =>
        a.store.update<Task>(id, () => A.from<Task>({ status: new A.ImmutableString("pending"), note: new A.ImmutableString(id), progress: 0, owner })),
      ),
    );
    const same = async (): Promise<boolean> => {
      const [sa, sb] = await Promise.all([a.store.summary("task/"), b.store.summary("task/")]);
      return sa.count === sb.count && sa.buckets.every((d, i) => sb.buckets[i] === d);
    };
    await dial(a.node, b.node);
    await until(same, 120_000, 20);

    /**
     * Cut the pair apart, change every document on A (its writer), then redial and time until B holds every
     * change; returns that time and Automerge's in-memory sync of the same two sets of documents.
     */
    let rounds = 0;
    const round = async (label: string): Promise<Record<string, number>> => {
      partitioned = true;
      await a.node.hangUp(b.node.peerId);
      await until(async () => a.engine.peers().length === 0 && b.engine.peers().length === 0, 10_000);
      const edit = (store: LevelDocumentStore, progress: number): Promise<unknown> =>
        Promise.all(
          ids.map((id) =>
            store.update<Task>(id, (doc) =>
              A.change(doc as A.Doc<Task>, (d) => {
                d.status = new A.ImmutableString("running");
                d.progress = progress;
              }),
            ),
          ),
        );
      // Distinct values per round and side, so every edit is a real change.
      rounds += 1;
      await edit(a.store, rounds * 10 + 1);
      const copies = async (store: LevelDocumentStore): Promise<Map<string, A.Doc<Task>>> => {
        const out = new Map<string, A.Doc<Task>>();
        for (const id of ids) out.set(id, A.clone((await store.get<Task>(id)) as A.Doc<Task>));
        return out;
      };
      const [onA, onB] = [await copies(a.store), await copies(b.store)];

      partitioned = false;
      // Count arrivals instead of polling summaries: polling would steal the CPU being measured.
      const arrivedAt = (store: LevelDocumentStore, expected: number): { done: Promise<void>; off: () => void; seen: Set<string> } => {
        const seen = new Set<string>();
        let resolve!: () => void;
        const done = new Promise<void>((r) => (resolve = r));
        if (expected === 0) resolve();
        const off = store.onChange((change) => {
          if (change.origin === "remote" && !seen.has(change.id) && seen.add(change.id).size === expected) resolve();
        });
        return { done, off, seen };
      };
      const atB = arrivedAt(b.store, docs);
      const atA = arrivedAt(a.store, 0);
      const t0 = performance.now();
      await dial(b.node, a.node);
      const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`${label} timed out: ${atA.seen.size} and ${atB.seen.size} of ${docs} arrived`)), 60_000).unref(),
      );
      await Promise.race([Promise.all([atA.done, atB.done]), timeout]);
      const meshMs = performance.now() - t0;
      atA.off();
      atB.off();
      await until(same, 10_000, 20);

      // Median of three: this machine is shared, and one slow pass of the baseline would flatter the ratio.
      const rawRuns: number[] = [];
      let syncRounds = 0;
      for (let run = 0; run < 3; run++) {
        // Receiving consumes a document, so every pass starts from fresh copies made before the clock starts.
        const pairs = ids.map((id) => [A.clone(onA.get(id) as A.Doc<Task>), A.clone(onB.get(id) as A.Doc<Task>)] as const);
        const r0 = performance.now();
        syncRounds = 0;
        for (const [startX, startY] of pairs) {
          let x = startX;
          let y = startY;
          let sx = A.initSyncState();
          let sy = A.initSyncState();
          for (;;) {
            const [nsx, mx] = A.generateSyncMessage(x, sx);
            sx = nsx;
            if (mx !== null) [y, sy] = A.receiveSyncMessage(y, sy, mx);
            const [nsy, my] = A.generateSyncMessage(y, sy);
            sy = nsy;
            if (my !== null) [x, sx] = A.receiveSyncMessage(x, sx, my);
            syncRounds++;
            if (mx === null && my === null) break;
          }
          // Copies live in wasm memory until freed; left to the GC they make later passes several times slower.
          A.free(x);
          A.free(y);
        }
        rawRuns.push(performance.now() - r0);
        if (process.env.BENCH_TRACE) process.stderr.write(`raw pass ${(performance.now() - r0).toFixed(0)} ms\n`);
      }
      const rawMs = percentile(rawRuns, 50);
      for (const doc of [...onA.values(), ...onB.values()]) A.free(doc);
      return {
        [`${label}_mesh_ms`]: Math.round(meshMs * 10) / 10,
        [`${label}_raw_automerge_ms`]: Math.round(rawMs * 10) / 10,
        [`${label}_raw_rounds_per_doc`]: Math.round((syncRounds / docs) * 10) / 10,
        [`${label}_ratio`]: Math.round((meshMs / rawMs) * 100) / 100,
      };
    };
    // Task documents have one writer (the executing node), so only one side ever changes a document.
    return await round(signed ? "reconnect_sync" : "reconnect_sync_unsigned");
  } finally {
    for (const p of peers) {
      await Promise.allSettled([p.engine.stop()]);
      await Promise.allSettled([p.node.stop()]);
      await Promise.allSettled([p.store.close()]);
      await Promise.allSettled([p.db.close()]);
      rmSync(p.dir, { recursive: true, force: true });
    }
  }
}

/** Waits until this process used less than `share` of one core over a second; returns the time waited. */
async function waitForQuiet(share: number, maxMs: number): Promise<number> {
  const t0 = performance.now();
  while (performance.now() - t0 < maxMs) {
    const before = process.cpuUsage();
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, 1_000));
    const used = process.cpuUsage(before);
    if ((used.user + used.system) / 1000 / (performance.now() - w0) < share) break;
  }
  return performance.now() - t0;
}

/**
 * A 20-node mesh, each node connected to a few neighbours (ring plus chords),
 * one node holding a rare agent; lookups from every other node, by asking
 * connected members ("auto") and through the DHT only.
 */
async function capabilityLookup(size: number, lookups: number): Promise<Record<string, number>> {
  const keys = await Promise.all(Array.from({ length: size }, () => generateKeyPair("Ed25519")));
  const nodes = await Promise.all(keys.map((k) => startNode(k)));
  const holder = Math.min(7, size - 1);
  const directories: CapabilityDirectory[] = [];
  try {
    for (const [i, node] of nodes.entries()) {
      directories.push(
        await createCapabilityDirectory({
          libp2p: node,
          privateKey: keys[i] as PrivateKey,
          local: () => ({ agents: i === holder ? ["rare", "echo"] : ["echo"], skills: [], capabilities: [], load: 0, maxConcurrency: 4 }),
          version: "bench",
          isMember: () => true,
          refreshMs: 3_600_000,
        }),
      );
    }
    for (let i = 0; i < size; i++) {
      for (const step of [1, 2, 5]) {
        await dial(nodes[i] as MeshLibp2p, nodes[(i + step) % size] as MeshLibp2p).catch(() => undefined);
      }
    }
    await new Promise((r) => setTimeout(r, 1_000));
    await Promise.all(directories.map((d) => d.publish()));
    // Twenty nodes in one process start with a storm of DHT self-queries and routing-table refreshes that
    // one node per machine would not see; time lookups once the process is quiet.
    const settleMs = await waitForQuiet(0.25, 90_000);
    const measure = async (strategy: "auto" | "dht"): Promise<{ p50: number; found: number }> => {
      const latencies: number[] = [];
      let found = 0;
      for (let k = 0; k < lookups; k++) {
        const from = (holder + 1 + (k % (size - 1))) % size;
        const t0 = performance.now();
        const candidates = await (directories[from] as CapabilityDirectory).findAgent("rare", { strategy, timeoutMs: 10_000 });
        latencies.push(performance.now() - t0);
        if (process.env.BENCH_TRACE) process.stderr.write(`${strategy} ${k} ${(performance.now() - t0).toFixed(1)} ms ${candidates.length}\n`);
        if (candidates.some((c) => c.peerId === nodes[holder]?.peerId.toString())) found++;
      }
      return { p50: percentile(latencies, 50), found };
    };
    const auto = await measure("auto");
    const dht = await measure("dht");
    return {
      capability_mesh_nodes: size,
      capability_mesh_settle_ms: Math.round(settleMs),
      capability_lookup_auto_p50_ms: auto.p50,
      capability_lookup_auto_found_ratio: auto.found / lookups,
      capability_lookup_dht_p50_ms: dht.p50,
      capability_lookup_dht_found_ratio: dht.found / lookups,
    };
  } finally {
    await Promise.allSettled(directories.map((d) => d.stop()));
    await Promise.allSettled(nodes.map((n) => n.stop()));
  }
}

/** Child-process mode: one node with store, sync and directory, idle; prints its RSS. */
async function idleNode(): Promise<void> {
  const privateKey = await generateKeyPair("Ed25519");
  const node = await startNode(privateKey);
  const dir = mkdtempSync(join(tmpdir(), "coderclaw-bench-idle-"));
  const db = await openDatabase(dir);
  const store = new LevelDocumentStore(db, { path: dir });
  const identity = deviceIdentityFromSeed(randomBytes(32));
  const authority = createReplicaAuthority({ identity, db, rules: [OWNER_RULE], mayWrite: () => true });
  const engine = await createSyncEngine({ libp2p: node, store, authority, isMember: () => true });
  const directory = await createCapabilityDirectory({
    libp2p: node,
    privateKey,
    local: () => ({ agents: ["echo"], skills: [], capabilities: [], load: 0, maxConcurrency: 4 }),
    version: "bench",
    isMember: () => true,
  });
  await new Promise((r) => setTimeout(r, sized(2_000, 200)));
  globalThis.gc?.();
  process.stdout.write(JSON.stringify({ rss: process.memoryUsage().rss }) + "\n");
  await directory.stop();
  await engine.stop();
  await node.stop();
  await store.close();
  await db.close();
  rmSync(dir, { recursive: true, force: true });
}

async function idleRss(): Promise<number> {
  const child = spawn(process.execPath, [builtBenchScript("mesh.js"), "--idle-node", ...(SMOKE ? ["--smoke"] : [])], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  await new Promise<void>((resolve, reject) => {
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`idle node exited with ${code}`))));
  });
  const parsed = z.object({ rss: z.number() }).parse(JSON.parse(out.trim().split("\n").pop() ?? "{}"));
  return Math.round((parsed.rss / 1024 / 1024) * 10) / 10;
}

/** `--only rtt,routed,sync,caps,rss` runs a subset, for profiling one part. */
async function main(): Promise<void> {
  if (process.argv.includes("--idle-node")) {
    await idleNode();
    // As below: libp2p's leftover timers would keep the child alive after stop().
    process.exit(0);
  }
  const onlyAt = process.argv.indexOf("--only");
  const only = onlyAt >= 0 ? new Set((process.argv[onlyAt + 1] ?? "").split(",")) : undefined;
  const run = (part: string): boolean => only === undefined || only.has(part);
  const figures: Record<string, number> = {};
  if (run("rtt")) Object.assign(figures, await roundTrips(sized(2_000, 100)));
  if (run("routed")) {
    // As deployed: the executor in a process of its own; the raw round trip crosses the same two processes.
    const { raw_stream_rtt_p50_ms: rawTwo, ...two } = await measureRoutedTasks({ warmup: sized(3_000, 10), sequential: sized(500, 10), total: sized(3_000, 40), window: 32, processes: 2 });
    Object.assign(figures, two);
    if (rawTwo !== undefined && two.routed_task_p50_ms !== undefined) {
      figures.raw_stream_rtt_p50_ms_two_processes = rawTwo;
      figures.routed_p50_over_raw_rtt = Math.round((two.routed_task_p50_ms / rawTwo) * 10) / 10;
    }
    // Both nodes on one event loop: every task's audit, storage and replication of both sides compete.
    const one = await measureRoutedTasks({ warmup: sized(3_000, 10), sequential: sized(300, 10), total: sized(2_000, 40), window: 32, processes: 1 });
    for (const [k, v] of Object.entries(one)) figures[`${k}_one_process`] = v;
  }
  if (run("sync")) {
    const docs = Number(process.env.BENCH_SYNC_DOCS ?? sized(1_000, 50));
    figures.reconnect_sync_docs = docs;
    // Unsigned first, then signed, alternating twice, so neither side gets all the warm (or all the cold) runs.
    const unsigned: number[] = [];
    const signedMs: number[] = [];
    for (let pass = 0; pass < 2; pass++) {
      const u = await reconnectSync(docs, false);
      const s = await reconnectSync(docs, true);
      unsigned.push(u.reconnect_sync_unsigned_mesh_ms!);
      signedMs.push(s.reconnect_sync_mesh_ms!);
      if (pass === 1) Object.assign(figures, u, s);
    }
    const [u, sg] = [percentile(unsigned, 50), percentile(signedMs, 50)];
    figures.reconnect_sync_signed_over_unsigned = Math.round((sg / u) * 100) / 100;
  }
  if (run("caps")) Object.assign(figures, await capabilityLookup(sized(20, 4), sized(40, 4)));
  if (run("rss")) figures.idle_node_rss_mb = await idleRss();
  printResult("mesh", figures);
  // libp2p leaves timers (DHT, reconnect queue) that outlive stop(); the figures are printed.
  process.exit(0);
}

await main();
