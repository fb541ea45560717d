import * as A from "@automerge/automerge";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/create-node.js";
import { createReplicaAuthority, signedPatch } from "../../node/sync/index.js";
import { encodeFrame } from "../../protocols/framing/index.js";
import { createSyncCodec, signHeads, SYNC_PROTOCOL, type SyncMessage } from "../../protocols/sync/index.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { createShellAgent } from "../../src/agents/shell.js";
import { encodeTaskDoc, homeTaskDocId, taskDocId, type TaskDoc } from "../../src/engine/task-document.js";
import { actorIdOf } from "../../node/device-actor.js";
import { eventually, openRawStream } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * Attack table, replicated task state: a `verified` member (role ci) of a mesh
 * of three, each row a real scenario on 127.0.0.1 with LevelDB homes and the
 * restarts the attack needs. The founder F is admin; V runs shell tasks; M is
 * the attacker, running modified code (it writes sync frames itself).
 */
interface Scene {
  f: CoderClawNode;
  v: CoderClawNode;
  m: CoderClawNode;
  homes: { f: string; v: string; m: string };
  marker: string;
}

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function options(home: string, shell: boolean): NodeOptions {
  return {
    dataDir: home,
    mdns: false,
    agents: createBuiltinRegistry(shell ? [createShellAgent()] : []),
    leaseIntervalMs: 200,
    leaseTimeoutMs: 1500,
    inboundConnectionThreshold: 100,
  };
}

async function dialAll(nodes: CoderClawNode[]): Promise<void> {
  for (const a of nodes) for (const b of nodes) if (a !== b) await a.dial(b.multiaddrs()[0]!).catch(() => undefined);
}

async function scene(): Promise<Scene> {
  const dirs = { f: tempDir("cc-atk-f-"), v: tempDir("cc-atk-v-"), m: tempDir("cc-atk-m-") };
  const homes = { f: dirs.f.path, v: dirs.v.path, m: dirs.m.path };
  const s: Scene = {
    f: await createNode(options(homes.f, false)),
    v: await createNode(options(homes.v, true)),
    m: await createNode(options(homes.m, false)),
    homes,
    // In V's workspace: V runs F's shell work sandboxed, and the sandbox sees only the workspace of V's home.
    marker: join(homes.v, "workspaces", "default", "runs.txt"),
  };
  cleanups.push(() => Object.values(dirs).forEach((d) => d.remove()));
  cleanups.push(async () => {
    await Promise.allSettled([s.f.stop(), s.v.stop(), s.m.stop()]);
  });
  await s.f.createMesh("attack table");
  // M joins first, so V (joining after) holds M's certificate from its welcome.
  for (const [node, level] of [[s.m, "verified"], [s.v, "trusted"]] as const) {
    const { invite } = await s.f.pairing.invite(level, 60_000);
    await node.pairing.join(invite);
  }
  await dialAll([s.f, s.v, s.m]);
  await eventually(() => s.v.membership.isMember(s.m.peerId) && s.m.membership.isMember(s.v.peerId), 10_000, "all members");
  return s;
}

/** F has V run a shell task that appends a line to V's marker file; resolves when every node holds it completed. */
async function shellTaskOnV(s: Scene): Promise<string> {
  const task = await s.f.adapter.submitTask({ description: "append", input: "echo run >> runs.txt", agentId: "shell" }, { route: s.v.peerId });
  for (const node of [s.f, s.v, s.m]) await eventually(async () => (await node.core.engine.getTask(task.id))?.status === "completed", 15_000, `completed on ${node.peerId.slice(-6)}`);
  return task.id;
}

function runs(s: Scene): number {
  return existsSync(s.marker) ? readFileSync(s.marker, "utf8").split("\n").filter(Boolean).length : 0;
}

/**
 * M opens a sync stream of its own to `to` and sends `messages`, as modified code
 * would. A connection just made may refuse a first stream while it settles: M
 * tries again, as an attacker would.
 */
async function sendAsM(s: Scene, to: CoderClawNode, messages: SyncMessage[]): Promise<void> {
  // Modified code runs no honest sync beside its forgeries: left running, M's engine would reopen its session
  // and replace the raw stream before its frames are read.
  await s.m.sync.stop();
  const codec = createSyncCodec();
  const stream = await openRawStream(s.m, to, SYNC_PROTOCOL);
  for (const m of messages) stream.send(encodeFrame(codec.encode(m), codec.maxMessageBytes));
}

async function refusalsOf(node: CoderClawNode, sender: string): Promise<number> {
  const entries = await node.security.current.getAuditLog({ action: "sync.refused", result: "denied" });
  return entries.filter((e) => e.body.userId === sender && e.body.deviceId === sender).length;
}

async function restart(s: Scene, which: "f" | "v"): Promise<CoderClawNode> {
  await s[which].stop();
  const node = await createNode(options(s.homes[which], which === "v"));
  s[which] = node;
  cleanups.push(() => node.stop());
  await dialAll([s.f, s.v, s.m]);
  return node;
}

describe("attack table: replicated task state", () => {
  it("forged task state: a member's change to a task it does not execute is refused by every node, audited naming it, and never re-run after restarts", async () => {
    const s = await scene();
    const id = await shellTaskOnV(s);
    expect(runs(s)).toBe(1);
    const docId = taskDocId(id);
    const held = (await s.m.core.store.get<TaskDoc>(docId))!;
    const since = A.getHeads(held);
    // Back to pending with a new output: an ordinary Automerge change, as any member's store could make.
    const forged = A.change(A.clone(held), (d) => {
      d.status = new A.ImmutableString("pending");
      d.run = new A.ImmutableString(JSON.stringify({ output: "forged" }));
    });
    const changes = A.saveSince(forged, since);
    // Signed by M itself, and under V's own genuine signature (held by M) for other heads.
    const own = signHeads(s.m.identity, docId, A.getHeads(forged));
    const genuine = { ...createReplicaAuthority({ identity: s.m.identity, db: s.m.core.db, rules: [], mayWrite: () => true }).held(docId)!, heads: A.getHeads(forged) };
    for (const to of [s.f, s.v]) await sendAsM(s, to, [{ t: "patch", items: [signedPatch(docId, since, changes, own)] }]);
    await sendAsM(s, s.f, [{ t: "patch", items: [signedPatch(docId, since, changes, genuine)] }]);
    for (const node of [s.f, s.v]) await eventually(async () => (await refusalsOf(node, s.m.peerId)) >= 1, 10_000, "refusal audited");
    for (const node of [s.f, s.v]) {
      const state = await node.core.engine.getTask(id);
      expect(state?.status).toBe("completed");
      expect(state?.output).not.toBe("forged");
    }
    expect((await s.f.quarantine.list()).some((q) => q.id === docId && q.peer === s.m.peerId)).toBe(true);

    const v = await restart(s, "v");
    const f = await restart(s, "f");
    await new Promise((r) => setTimeout(r, 500));
    expect((await v.core.engine.getTask(id))?.status).toBe("completed");
    expect((await f.core.engine.getTask(id))?.status).toBe("completed");
    expect(runs(s)).toBe(1);
  }, 90_000);

  it("forged task state: a member that takes a task's history, names itself the executor and signs it cannot pass it off to a node that lacks the task", async () => {
    const s = await scene();
    // F is away while V runs a task of its own; M then withholds V's copy and offers its own version when F is back.
    await s.f.stop();
    // A task V keeps (an attempt V runs for M would stay on V: its document is not replicated).
    const task = await s.v.adapter.submitTask({ description: "v's", input: "x", agentId: "echo" }, { route: s.v.peerId });
    await eventually(async () => (await s.m.core.engine.getTask(task.id))?.status === "completed", 10_000, "M holds V's task");
    await s.m.sync.stop();
    // V is away while F starts: F redials its members as it starts, before any block could be set, and V would hand it the genuine copy.
    const vId = s.v.peerId;
    await s.v.stop();
    const f = await createNode(options(s.homes.f, false));
    s.f = f;
    cleanups.push(() => f.stop());
    f.block(vId);
    const v = await createNode(options(s.homes.v, true));
    s.v = v;
    cleanups.push(() => v.stop());
    await f.dial(s.m.multiaddrs()[0]!);
    await eventually(() => s.m.libp2p.getConnections(f.libp2p.peerId).length > 0, 5_000, "M sees F's connection");
    const docId = taskDocId(task.id);
    const held = (await s.m.core.store.get<TaskDoc>(docId))!;
    const taken = A.change(A.clone(held, { actor: actorIdOf(s.m.peerId) }), (d) => {
      const spec = JSON.parse(d.spec.toString()) as Record<string, unknown>;
      d.spec = new A.ImmutableString(JSON.stringify({ ...spec, executorId: s.m.peerId }));
      d.run = new A.ImmutableString(JSON.stringify({ output: "forged" }));
    });
    const sig = signHeads(s.m.identity, docId, A.getHeads(taken));
    await sendAsM(s, f, [{ t: "patch", items: [signedPatch(docId, [], A.save(taken), sig)] }]);
    await eventually(async () => (await refusalsOf(f, s.m.peerId)) >= 1, 10_000, "refused and audited");
    expect(await f.core.engine.getTask(task.id)).toBeNull();
    // Once F meets V again, it takes V's own copy.
    f.unblock(s.v.peerId);
    await f.dial(s.v.multiaddrs()[0]!);
    await eventually(async () => (await f.core.engine.getTask(task.id))?.executorId === s.v.peerId, 15_000, "F holds V's genuine task");
    expect((await f.core.engine.getTask(task.id))?.output).not.toBe("forged");
  }, 90_000);

  it("remote code execution: a pending shell task injected by a member is never stored as V's, and nothing runs after restarts", async () => {
    const s = await scene();
    const make = (taskId: string, executorId: string | undefined): { bytes: Uint8Array; heads: string[] } => {
      const spec = JSON.stringify({ description: "pwn", input: "echo pwned >> runs.txt", createdAt: Date.now(), agentId: "shell", ...(executorId && { executorId }) });
      const events = [JSON.stringify([{ seq: 1, type: "created", ts: Date.now(), status: "pending" }])];
      return encodeTaskDoc({ id: taskId, status: "pending", spec, events }, "aa".repeat(16));
    };
    const naming = [
      ["01a00000-0000-7000-8000-00000000000a", s.v.peerId],
      ["01a00000-0000-7000-8000-00000000000b", undefined],
    ] as const;
    // M's own task naming M as executor is state others may hold, never work for them.
    const own = await s.m.adapter.submitTask({ description: "mine", input: "x", agentId: "echo" }, { route: s.m.peerId });
    await eventually(async () => (await s.f.core.engine.getTask(own.id)) !== null, 10_000, "F holds M's task");
    for (const [taskId, executor] of naming) {
      const { bytes, heads } = make(taskId, executor);
      const sig = signHeads(s.m.identity, taskDocId(taskId), heads);
      for (const to of [s.f, s.v]) await sendAsM(s, to, [{ t: "patch", items: [signedPatch(taskDocId(taskId), [], bytes, sig)] }]);
    }
    for (const node of [s.f, s.v]) await eventually(async () => (await refusalsOf(node, s.m.peerId)) >= 2, 10_000, "both refused and audited");
    for (const node of [s.f, s.v]) for (const [taskId] of naming) expect(await node.core.engine.getTask(taskId)).toBeNull();
    await restart(s, "v");
    await restart(s, "f");
    await new Promise((r) => setTimeout(r, 1000));
    expect(runs(s)).toBe(0);
    expect((await s.f.core.engine.getTask(own.id))?.executorId).toBe(s.m.peerId);
  }, 90_000);

  it("home documents: an attempt's document, which stays on its executor, cannot be written or planted through sync by a member", async () => {
    const s = await scene();
    const id = await shellTaskOnV(s);
    const attemptId = (await s.f.core.engine.getTask(id))!.placement!.attemptId!;
    const homeId = homeTaskDocId(attemptId);
    expect(s.v.core.store.holds(homeId), "V keeps its attempt's document home").toBe(true);
    expect(s.f.core.store.holds(homeId) || s.m.core.store.holds(homeId), "nobody else holds it").toBe(false);
    // M claims the attempt's home document, naming itself the writer, towards V (which holds it) and F (which does not).
    const spec = JSON.stringify({ description: "home", input: "echo pwned >> runs.txt", createdAt: Date.now(), agentId: "shell", executorId: s.m.peerId });
    const { bytes, heads } = encodeTaskDoc({ id: attemptId, status: "pending", spec, events: [] }, actorIdOf(s.m.peerId));
    const sig = signHeads(s.m.identity, homeId, heads);
    for (const to of [s.f, s.v]) await sendAsM(s, to, [{ t: "patch", items: [signedPatch(homeId, [], bytes, sig)] }]);
    for (const node of [s.f, s.v]) await eventually(async () => (await refusalsOf(node, s.m.peerId)) >= 1, 10_000, "refused and audited");
    expect(s.f.core.store.holds(homeId)).toBe(false);
    expect((await s.v.core.engine.getTask(attemptId))?.status).toBe("completed");
    const v = await restart(s, "v");
    await new Promise((r) => setTimeout(r, 500));
    expect((await v.core.engine.getTask(attemptId))?.status).toBe("completed");
    expect(runs(s)).toBe(1);
  }, 90_000);

  it("bricking: a malformed task document, even validly signed by its own executor, is refused and quarantined; listing and restarts work", async () => {
    const s = await scene();
    const taskId = "01a00000-0000-7000-8000-0000000000bb";
    const spec = JSON.stringify({ description: "brick", input: "x", createdAt: Date.now(), agentId: "echo", executorId: s.m.peerId });
    const { bytes, heads } = encodeTaskDoc({ id: taskId, status: "completed", spec, events: ["this is not JSON"] }, actorIdOf(s.m.peerId));
    const sig = signHeads(s.m.identity, taskDocId(taskId), heads);
    for (const to of [s.f, s.v]) await sendAsM(s, to, [{ t: "patch", items: [signedPatch(taskDocId(taskId), [], bytes, sig)] }]);
    for (const node of [s.f, s.v]) await eventually(async () => (await refusalsOf(node, s.m.peerId)) >= 1, 30_000, "refused and audited");
    // The refusal is audited and quarantined side by side: the quarantine's write may land after the audit entry.
    const kept = async () => (await s.v.quarantine.list()).find((e) => e.id === taskDocId(taskId));
    await eventually(async () => (await kept()) !== undefined, 30_000, "quarantined on V");
    expect((await kept())?.reason).toMatch(/history entry 0 is not a JSON list/);
    for (const node of [s.f, s.v]) expect(Array.isArray(await node.adapter.listTasks())).toBe(true);
    const v = await restart(s, "v");
    expect(Array.isArray(await v.adapter.listTasks())).toBe(true);
  }, 90_000);
});
