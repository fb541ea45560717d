import "../src/polyfills.js";
import * as A from "@automerge/automerge";
import { mkdtempSync, rmSync } from "node:fs";
import { randomBytes } from "node:crypto";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { deviceIdentityFromSeed } from "../identity/index.js";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../node/create-node.js";
import { createMeshLibp2p, type MeshLibp2p } from "../node/libp2p/create-libp2p.js";
import { createSyncEngine, type SyncEngine } from "../node/sync/sync-engine.js";
import { createSyncCodec } from "../protocols/sync/messages.js";
import { signedPatch } from "../protocols/sync/peer-session.js";
import { createReplicaAuthority, type WriterRule } from "../protocols/sync/replica-authority.js";
import { createLogPositions, type LogPositions } from "../protocols/sync/log-positions.js";
import { openDatabase, type Database } from "../src/storage/level-database.js";
import { LevelDocumentStore } from "../src/storage/level-document-store.js";
import { percentile, printResult, SMOKE, sized } from "./report.js";
import { formCost } from "./scale-form.js";
import { socketBytes } from "./socket-bytes.js";

/**
 * What a mesh costs as it grows, all nodes in this process on 127.0.0.1, bytes
 * counted as written to TCP sockets:
 * - `live`: mesh-wide bytes and CPU (every node of this process, until the
 *   change is held everywhere) per replicated task-document change (the median
 *   over the changes; each is awaited on every node, then 60 ms of quiet), every
 *   pair connected and in a line, against the ideal of one copy of the signed
 *   patch, as one sync frame, per other member.
 * - `idle`: whole nodes (every service) in a formed mesh, every pair connected,
 *   doing nothing: socket bytes and CPU per node per minute, after they
 *   settled.
 * - `reconnect`: two sync nodes holding N documents, apart while k of them
 *   change, then reconnected: socket bytes (the connection's own handshakes
 *   included) and CPU of both until the changes are held and the log position
 *   kept; beside it, the same reconnect comparing summaries (what every
 *   reconnect cost before change logs), measured in the same run; beside
 *   them what the connection alone costs ({@link connectionOnly}).
 * - `form`: a mesh of n whole nodes in child processes formed by invites
 *   from a founder, then tasks routed `auto` from it ({@link formCost}).
 */

type Task = { status: A.ImmutableString; progress: number; owner: A.ImmutableString };

/** Bench documents name their writer in `owner`. */
const OWNER_RULE: WriterRule = { prefix: "task/", writerOf: (_id, root) => (typeof root("owner") === "string" ? (root("owner") as string) : undefined) };

interface SyncNode {
  id: string;
  positions: SwitchablePositions;
  libp2p: MeshLibp2p;
  db: Database;
  store: LevelDocumentStore;
  engine: SyncEngine;
  dir: string;
  sign(bytes: Uint8Array): Uint8Array;
}

/** `n` nodes running document sync; `linked(a, b)` says whether node ids a and b may connect. */
async function startSyncNodes(n: number, linked: (a: string, b: string) => boolean): Promise<SyncNode[]> {
  const nodes: SyncNode[] = [];
  for (let i = 0; i < n; i++) {
    const identity = deviceIdentityFromSeed(randomBytes(32));
    const libp2p = await createMeshLibp2p({ privateKey: identity.privateKey, mdns: false, admit: (peer) => linked(identity.peerId, peer), inboundConnectionThreshold: 10_000 });
    const dir = mkdtempSync(join(tmpdir(), "coderclaw-bench-scale-"));
    const db = await openDatabase(dir);
    const store = new LevelDocumentStore(db, { path: dir });
    const authority = createReplicaAuthority({ identity, db, rules: [OWNER_RULE], mayWrite: () => true });
    const positions = switchable(createLogPositions(db, (ops) => store.write(ops), (error) => console.error(error)));
    const engine = await createSyncEngine({ libp2p, store, authority, isMember: () => true, positions });
    nodes.push({ id: identity.peerId, positions, libp2p, db, store, engine, dir, sign: identity.sign });
  }
  return nodes;
}

/** Log positions that can be hidden, so that a reconnect compares summaries as it did before change logs. */
interface SwitchablePositions extends LogPositions {
  hidden: boolean;
  /** Positions kept so far: one more each time a reconciliation settles. */
  kept: number;
}

function switchable(positions: LogPositions): SwitchablePositions {
  const out: SwitchablePositions = {
    hidden: false,
    kept: 0,
    get: (peer) => (out.hidden ? undefined : positions.get(peer)),
    set: (peer, position) => {
      out.kept++;
      positions.set(peer, position);
    },
  };
  return out;
}

async function stopSyncNodes(nodes: SyncNode[]): Promise<void> {
  for (const node of nodes) {
    await node.engine.stop();
    await node.libp2p.stop();
    await node.db.close();
    rmSync(node.dir, { recursive: true, force: true });
  }
}

const round = (x: number, places: number): number => Math.round(x * 10 ** places) / 10 ** places;

async function until(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms`);
    await sleep(5);
  }
}

/** Pairs of node indexes to connect: every pair, or each node to the next. */
function links(n: number, topology: "full" | "line"): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (let i = 0; i < n; i++) for (let j = i + 1; j < n; j++) if (topology === "full" || j === i + 1) out.push([i, j]);
  return out;
}

/**
 * Mesh-wide socket bytes per change of one task document, each change made by
 * the document's writer and awaited on every node before the next. Each node
 * writes one document; the writers take turns.
 */
async function liveCost(n: number, topology: "full" | "line", changes: number): Promise<Record<string, number | string>> {
  const linked = links(n, topology);
  const allowed = new Set<string>();
  // Only the chosen links carry sync: every other pair refuses the connection.
  const nodes = await startSyncNodes(n, (a, b) => allowed.has(`${a} ${b}`));
  try {
    for (const [i, j] of linked) for (const [a, b] of [[i, j], [j, i]] as const) allowed.add(`${nodes[a]!.id} ${nodes[b]!.id}`);
    // Fifty nodes on one event loop: a handshake can time out while the others are busy; such a dial is tried again.
    for (const [i, j] of linked) {
      for (let attempt = 0; ; attempt++) {
        try {
          await nodes[i]!.libp2p.dial(nodes[j]!.libp2p.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) });
          break;
        } catch (error) {
          if (attempt >= 10) throw error;
          await sleep(200 * attempt);
        }
      }
    }
    const degree = (i: number): number => linked.filter(([a, b]) => a === i || b === i).length;
    await until(() => nodes.every((node, i) => node.engine.peers().length === degree(i)), 300_000, `sync sessions (${topology}, ${n} nodes)`).catch((error: Error) => {
      throw new Error(`${error.message}: sessions ${nodes.map((node) => node.engine.peers().length).join(",")}, connections ${nodes.map((node) => node.libp2p.getConnections().length).join(",")}`);
    });

    const ids = nodes.map((_, i) => `task/bench-scale-${i}-${randomBytes(4).toString("hex")}`);
    await Promise.all(
      nodes.map((node, i) =>
        node.store.update<Task>(ids[i]!, () => A.from<Task>({ status: new A.ImmutableString("pending"), progress: 0, owner: new A.ImmutableString(node.id) })),
      ),
    );
    const converged = async (id: string, heads: string[]): Promise<boolean> => {
      for (const node of nodes) {
        const held = await node.store.heads(id);
        if (held === undefined || held.length !== heads.length || !heads.every((h) => held.includes(h))) return false;
      }
      return true;
    };
    for (let i = 0; i < n; i++) {
      const heads = (await nodes[i]!.store.heads(ids[i]!))!;
      await until(() => converged(ids[i]!, heads), 20_000, "first replication");
    }
    // Trailing announcements and answers of the first replication.
    await sleep(300);

    const quiet = 60;

    let patchBytes = 0;
    const codec = createSyncCodec();
    const perChange: number[] = [];
    const cpuPerChange: number[] = [];
    for (let c = 0; c < changes; c++) {
      const w = c % n;
      const writer = nodes[w]!;
      const id = ids[w]!;
      const before = (await writer.store.heads(id))!;
      const start = socketBytes();
      const cpu0 = process.cpuUsage();
      await writer.store.update<Task>(id, (doc) =>
        A.change(doc as A.Doc<Task>, (d) => {
          d.progress = c + 1;
          d.status = new A.ImmutableString("running");
        }),
      );
      const doc = (await writer.store.get<Task>(id))!;
      const heads = A.getHeads(doc);
      // The ideal: one copy of this change, signed, as one sync frame, per other member.
      const signature = { writer: writer.id, heads, sig: writer.sign(new Uint8Array(32)), index: 0, size: 1, proof: [] };
      patchBytes += codec.encode({ t: "patch", items: [signedPatch(id, before, A.saveSince(doc, before), signature)] }).byteLength;
      await until(() => converged(id, heads), 20_000, `change ${c}`);
      const cpu = process.cpuUsage(cpu0);
      cpuPerChange.push((cpu.user + cpu.system) / 1000);
      await sleep(quiet);
      perChange.push(socketBytes() - start);
    }
    // The median: libp2p's own occasional traffic (pings, identify) falls into a few changes' windows.
    const bytes = percentile(perChange, 50);
    const ideal = ((n - 1) * patchBytes) / changes;
    return { n, topology, changes, bytesPerChange: Math.round(bytes), idealBytesPerChange: Math.round(ideal), ratioToIdeal: Math.round((bytes / ideal) * 100) / 100, cpuMsPerChange: round(percentile(cpuPerChange, 50), 1) };
  } finally {
    await stopSyncNodes(nodes);
  }
}

/** Socket bytes and CPU per node per minute over `windowMs`, once `settleMs` of quiet has passed. */
async function quietCost(n: number, windowMs: number, settleMs: number): Promise<{ bytesPerNodePerMinute: number; cpuPercentOfACorePerNode: number }> {
  await sleep(settleMs);
  const bytes0 = socketBytes();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await sleep(windowMs);
  const minutes = (performance.now() - t0) / 60_000;
  const cpu = process.cpuUsage(cpu0);
  return {
    bytesPerNodePerMinute: Math.round((socketBytes() - bytes0) / n / minutes),
    cpuPercentOfACorePerNode: round(((cpu.user + cpu.system) / 1000 / (minutes * 60_000) / n) * 100, 3),
  };
}

/**
 * Socket bytes and CPU per node per minute of `n` whole nodes in a formed mesh,
 * every pair connected, doing nothing, measured over `windowMs` once they have
 * been quiet for a while (pairing, first reconciliation); beside it the same
 * of `n` bare libp2p nodes of the mesh's stack (TCP, Noise, Yamux, identify,
 * ping, the DHT), every pair connected: what the mesh adds beyond libp2p's own
 * keep-alives is the difference.
 */
async function idleCost(n: number, windowMs: number, settleMs: number): Promise<Record<string, number>> {
  const dirs = Array.from({ length: n }, () => mkdtempSync(join(tmpdir(), "coderclaw-bench-scale-")));
  const nodes: CoderClawNode[] = [];
  let mesh: Awaited<ReturnType<typeof quietCost>>;
  try {
    for (const dir of dirs) nodes.push(await createNode({ dataDir: dir, mdns: false, agents: createBuiltinRegistry([]), inboundConnectionThreshold: 1000 }));
    const [founder, ...rest] = nodes;
    await founder!.createMesh("bench scale");
    for (const node of rest) await node.pairing.join((await founder!.pairing.invite("trusted", 60_000)).invite);
    for (const a of nodes) for (const b of nodes) if (a !== b) await a.dial(b.multiaddrs()[0]!).catch(() => undefined);
    mesh = await quietCost(n, windowMs, settleMs);
  } finally {
    await Promise.all(nodes.map((node) => node.stop()));
    for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  }
  const bare = await Promise.all(Array.from({ length: n }, () => createMeshLibp2p({ privateKey: deviceIdentityFromSeed(randomBytes(32)).privateKey, mdns: false, admit: () => true, inboundConnectionThreshold: 1000 })));
  let libp2p: Awaited<ReturnType<typeof quietCost>>;
  try {
    for (const a of bare) for (const b of bare) if (a !== b) await a.dial(b.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
    libp2p = await quietCost(n, windowMs, settleMs);
  } finally {
    await Promise.all(bare.map((b) => b.stop()));
  }
  return {
    n,
    windowMs,
    ...mesh,
    libp2pBytesPerNodePerMinute: libp2p.bytesPerNodePerMinute,
    libp2pCpuPercentOfACorePerNode: libp2p.cpuPercentOfACorePerNode,
    beyondLibp2pBytesPerNodePerMinute: mesh.bytesPerNodePerMinute - libp2p.bytesPerNodePerMinute,
    beyondLibp2pCpuPercentOfACorePerNode: round(mesh.cpuPercentOfACorePerNode - libp2p.cpuPercentOfACorePerNode, 3),
  };
}

/**
 * What a reconnect costs before any protocol of the mesh speaks: two bare
 * libp2p nodes of the mesh's stack (TCP, Noise, Yamux, identify, ping, the
 * DHT) dialling again, socket bytes and CPU until 200 ms after the dial, the
 * median of `rounds`.
 */
async function connectionOnly(rounds: number): Promise<{ bytes: number; cpuMs: number }> {
  const nodes = await Promise.all([0, 1].map(() => createMeshLibp2p({ privateKey: deviceIdentityFromSeed(randomBytes(32)).privateKey, mdns: false, admit: () => true })));
  const [a, b] = nodes as [MeshLibp2p, MeshLibp2p];
  try {
    const bytes: number[] = [];
    const cpuMs: number[] = [];
    for (let i = 0; i <= rounds; i++) {
      await a.hangUp(b.peerId);
      await until(() => a.getConnections(b.peerId).length === 0 && b.getConnections(a.peerId).length === 0, 10_000, "bare connection closed");
      const bytes0 = socketBytes();
      const cpu0 = process.cpuUsage();
      await a.dial(b.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) });
      await sleep(200);
      const cpu = process.cpuUsage(cpu0);
      // The first round warms the code paths up.
      if (i === 0) continue;
      bytes.push(socketBytes() - bytes0);
      cpuMs.push((cpu.user + cpu.system) / 1000);
    }
    return { bytes: percentile(bytes, 50), cpuMs: round(percentile(cpuMs, 50), 1) };
  } finally {
    await Promise.all(nodes.map((n) => n.stop()));
  }
}

/**
 * Two sync nodes; the first writes `stored` documents and the second takes
 * them; then, for each k, they are apart while the first changes k documents,
 * and reconnect, with and without their log positions.
 */
async function reconnectCost(stored: number, ks: readonly number[]): Promise<Array<Record<string, number>>> {
  let apart = false;
  const nodes = await startSyncNodes(2, () => !apart);
  const [a, b] = nodes as [SyncNode, SyncNode];
  try {
    const ids = Array.from({ length: stored }, (_, i) => `task/bench-reconnect-${String(i).padStart(6, "0")}`);
    for (let i = 0; i < stored; i += 1000) {
      await Promise.all(ids.slice(i, i + 1000).map((id) => a.store.update<Task>(id, () => A.from<Task>({ status: new A.ImmutableString("done"), progress: 100, owner: new A.ImmutableString(a.id) }))));
    }
    const settled = async (): Promise<boolean> => b.positions.get(a.id)?.seq === a.store.logPosition().seq && a.positions.get(b.id) !== undefined;
    const connect = async (): Promise<void> => {
      apart = false;
      // libp2p's reconnect queue may have a redial under way, begun while they were apart: a dial now joins it and
      // shares its refusal, so try again until a dial of its own runs.
      for (let attempt = 0; ; attempt++) {
        try {
          await a.libp2p.dial(b.libp2p.getMultiaddrs()[0]!, { signal: AbortSignal.timeout(10_000) });
          return;
        } catch (error) {
          if ((error as Error).name !== "DialDeniedError" || attempt >= 20) throw error;
          await sleep(50);
        }
      }
    };
    await connect();
    await until(async () => (await b.store.heads(ids.at(-1)!)) !== undefined && (await settled()), 3_600_000, `${stored} documents replicated`);
    const out: Array<Record<string, number>> = [];
    const bare = await connectionOnly(5);
    for (const k of ks) {
      const row: Record<string, number> = { stored, changed: k, connectionOnlyBytes: bare.bytes, connectionOnlyCpuMs: bare.cpuMs };
      for (const how of ["positions", "summaries"] as const) {
        apart = true;
        await a.libp2p.hangUp(b.libp2p.peerId);
        await until(() => a.engine.peers().length === 0 && b.engine.peers().length === 0, 10_000, "sessions closed");
        const changed = ids.slice(0, k);
        for (const id of changed) await a.store.update<Task>(id, (doc) => A.change(doc as A.Doc<Task>, (d) => void (d.progress = (d.progress + 1) % 1000)));
        const want = await Promise.all(changed.map(async (id) => ({ id, heads: (await a.store.heads(id))! })));
        a.positions.hidden = b.positions.hidden = how === "summaries";
        const kept = [a.positions.kept, b.positions.kept];
        const bytes0 = socketBytes();
        const cpu0 = process.cpuUsage();
        await connect();
        const held = async (): Promise<boolean> => (await Promise.all(want.map(async (w) => ((await b.store.heads(w.id)) ?? []).join() === [...w.heads].sort().join()))).every(Boolean);
        // Both sides settle a reconciliation (keep a position) whether they compared summaries or asked since.
        await until(async () => a.positions.kept > kept[0]! && b.positions.kept > kept[1]! && (await held()), 120_000, `reconnect with ${k} changed of ${stored}`);
        // What the connection sends of its own once up (identify, the first ping) counts too.
        await sleep(200);
        const cpu = process.cpuUsage(cpu0);
        row[`${how}Bytes`] = socketBytes() - bytes0;
        row[`${how}CpuMs`] = round((cpu.user + cpu.system) / 1000, 1);
        a.positions.hidden = b.positions.hidden = false;
        await until(settled, 30_000, "positions kept again");
      }
      row.bytesRatioToSummaries = round(row.positionsBytes! / row.summariesBytes!, 3);
      out.push(row);
    }
    return out;
  } finally {
    await stopSyncNodes(nodes);
  }
}

/** `--stored 1000,10000,100000`: the store sizes of the reconnect part (default 1,000 and 10,000; 100,000 takes many minutes to replicate first). */
function storedSizes(): number[] {
  const at = process.argv.indexOf("--stored");
  return at === -1 ? [1_000, 10_000] : (process.argv[at + 1] ?? "").split(",").map(Number).filter((n) => Number.isSafeInteger(n) && n > 0);
}

/** `--only live,idle,reconnect,form`: the parts to run (default all). */
function parts(): Set<string> {
  const at = process.argv.indexOf("--only");
  return new Set(at === -1 ? ["live", "idle", "reconnect", "form"] : (process.argv[at + 1] ?? "").split(","));
}

/** `--nodes 5,20,50`: the mesh sizes of the live, idle and form parts (default 2, 5, 10, 20, 50; 5, 10, 20; 5, 20, 50). */
function meshSizes(defaults: number[]): number[] {
  const at = process.argv.indexOf("--nodes");
  return at === -1 ? defaults : (process.argv[at + 1] ?? "").split(",").map(Number).filter((n) => Number.isSafeInteger(n) && n > 1);
}

/** Child processes hosting the nodes of a form run: one per node up to 10 on this 2-core machine, then nodes share them. */
const FORM_PROCESSES = 10;

async function main(): Promise<void> {
  const only = parts();
  const sizes = SMOKE ? [2, 4] : meshSizes([2, 5, 10, 20, 50]);
  const changes = sized(30, 4);
  const live: Array<Record<string, number | string>> = [];
  if (only.has("live")) for (const topology of ["full", "line"] as const) for (const n of sizes) live.push(await liveCost(n, topology, changes));
  const idle: Array<Record<string, number>> = [];
  if (only.has("idle")) for (const n of SMOKE ? [3] : meshSizes([5, 10, 20])) idle.push(await idleCost(n, sized(30_000, 1_000), sized(10_000, 500)));
  const reconnect: Array<Record<string, number>> = [];
  if (only.has("reconnect")) for (const stored of SMOKE ? [300] : storedSizes()) reconnect.push(...(await reconnectCost(stored, SMOKE ? [0, 10] : [0, 10, 1_000])));
  const form: Array<Record<string, number>> = [];
  if (only.has("form")) for (const n of SMOKE ? [3] : meshSizes([5, 20, 50])) form.push(await formCost(n, Math.min(n - 1, FORM_PROCESSES), sized(50, 3), sized(20_000, 500), sized(30_000, 1_000), sized(6, 2)));
  printResult("scale", { live, idle, reconnect, form });
}

await main();
process.exit(0);
