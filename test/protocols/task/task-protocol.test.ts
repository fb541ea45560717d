import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it, vi } from "vitest";
import { deviceIdentityFromSeed, encodeCanonical, type DeviceIdentity } from "../../../identity/index.js";
import { memoryChannelPair, RequestChannel, type MessageChannel } from "../../../protocols/framing/index.js";
import {
  createTaskCodec,
  createTaskExecutor,
  presumedLost,
  submitSignedBytes,
  TaskRequester,
  taskRequestShape,
  type AuthorizeSubmit,
  type SubmitEnvelope,
  type TaskExecutor,
  type TaskMessage,
} from "../../../protocols/task/index.js";
import { createBuiltinRegistry } from "../../../src/agents/builtin.js";
import { CoderClawError } from "../../../src/contract/errors.js";
import type { TaskEvent } from "../../../src/contract/types.js";
import { openLocalCore, type LocalCore } from "../../../src/runtime/local-core.js";
import { createReplayGuard } from "../../../node/tasks/replay-guard.js";
import { ExecutionController } from "../../helpers/controlled-agent.js";
import { tempDir } from "../../helpers/temp-dir.js";

const MESH = "mesh-under-test";
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Pair {
  core: LocalCore;
  requester: TaskRequester;
  executor: TaskExecutor;
  submitter: DeviceIdentity;
  executorId: string;
  /** The submitter's end of a second channel to the executor, written raw as a hostile member would. */
  raw(): MessageChannel<TaskMessage>;
}

/** A submitter and an executor (a real engine on a temp home) joined by in-memory channels that encode every message as the wire does. */
async function pair(options: { authorize?: AuthorizeSubmit; leaseIntervalMs?: number; slots?: number } = {}): Promise<Pair & { ctl: ExecutionController; requesterAs(identity: DeviceIdentity): TaskRequester }> {
  const ctl = new ExecutionController();
  const dir = tempDir("cc-task-protocol-");
  const core = await openLocalCore({ dataDir: dir.path, shutdownGraceMs: 50, agents: createBuiltinRegistry([ctl.agent("ctl", false), ctl.agent("ctl-retry", true)]), ...(options.slots !== undefined && { maxConcurrentTasks: options.slots }) });
  cleanups.push(() => dir.remove(), () => core.close());
  const submitter = deviceIdentityFromSeed(randomBytes(32));
  const executorId = deviceIdentityFromSeed(randomBytes(32)).peerId;
  const guard = createReplayGuard({ maxClockSkewMs: 60_000, memoryMs: 60_000 });
  const executor = createTaskExecutor({
    engine: core.engine,
    agents: core.agents,
    meshId: () => MESH,
    replays: { admit: (peer, issuedAt, nonce) => void guard.admit(peer, issuedAt, nonce), prune: () => void guard.prune() },
    leaseIntervalMs: options.leaseIntervalMs ?? 60_000,
    ...(options.authorize !== undefined && { authorize: options.authorize }),
  });
  cleanups.push(() => executor.stop());
  const connect = (as: DeviceIdentity = submitter): MessageChannel<TaskMessage> => {
    const [mine, theirs] = memoryChannelPair<TaskMessage>({ codec: createTaskCodec(), peers: [as.peerId, executorId] });
    void executor.serve(theirs);
    return mine;
  };
  /** A requester of its own device, on a channel of its own. */
  const requesterAs = (identity: DeviceIdentity): TaskRequester => {
    let requests: RequestChannel<TaskMessage> | undefined;
    const r: TaskRequester = new TaskRequester({
      channelTo: async () => (requests ??= new RequestChannel(connect(identity), taskRequestShape, r.requestOptions)),
      identity,
      meshId: () => MESH,
      requestTimeoutMs: 5_000,
    });
    cleanups.push(() => requests?.close());
    return r;
  };
  return { core, requester: requesterAs(submitter), executor, submitter, executorId, raw: () => connect(), ctl, requesterAs };
}

async function collect(events: AsyncIterable<TaskEvent>): Promise<TaskEvent[]> {
  const out: TaskEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

/** A signed envelope of `submitter` for the test mesh, encoded as it is signed. */
function envelope(submitter: DeviceIdentity, description: string): Uint8Array {
  return encodeCanonical({ request: { description, input: "x", agentId: "echo" }, requester: submitter.peerId, meshId: MESH, issuedAt: Date.now(), nonce: randomBytes(16) } satisfies SubmitEnvelope);
}

/** Send one raw `submit` and read the answer to it. */
async function rawSubmit(channel: MessageChannel<TaskMessage>, items: Uint8Array[], sig: Uint8Array): Promise<TaskMessage[]> {
  await channel.send({ t: "submit", sig, items: items.map((e, i) => ({ rid: i + 1, envelope: e })) });
  const answers: TaskMessage[] = [];
  for await (const m of channel) {
    if (m.t === "lease") continue;
    answers.push(m);
    if (answers.length === items.length) break;
  }
  return answers;
}

describe("task protocol over an in-memory channel", () => {
  it("submits, answers get and events, and stores the task with its submitter", async () => {
    const { requester, executorId, core, submitter } = await pair();
    const task = await requester.submit(executorId, { description: "plain", input: "hello", agentId: "echo" });
    expect(task.description).toBe("plain");
    await vi.waitFor(async () => expect((await requester.get(executorId, task.id))?.status).toBe("completed"));
    expect((await core.engine.getTask(task.id))?.submittedBy).toBe(submitter.peerId);
    expect((await core.engine.getTask(task.id))?.metadata).toMatchObject({ requester: submitter.peerId, retryable: core.agents.get("echo")!.retryable });
    const history = await requester.events(executorId, task.id);
    expect(history.map((e) => e.seq)).toEqual(history.map((_, i) => i + 1));
    expect(history.at(-1)?.status).toBe("completed");
    expect(await requester.get(executorId, "00000000-0000-4000-8000-000000000000")).toBeNull();
  });

  it("streams a followed submit's events to its subscriber, and a later subscriber resumes after the sequence it saw", async () => {
    const { requester, executorId } = await pair();
    const task = await requester.submit(executorId, { description: "steps", input: "50 4", agentId: "sleep" }, undefined, { follow: true });
    const events = await collect(requester.subscribe(executorId, task.id, 0));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === "progress_updated").length).toBeGreaterThanOrEqual(4);
    expect(events.at(-1)?.status).toBe("completed");
    const rest = await collect(requester.subscribe(executorId, task.id, 2));
    expect(rest.map((e) => e.seq)).toEqual(events.slice(2).map((e) => e.seq));
  });

  it("cancels a running task at the executor", async () => {
    const { requester, executorId, ctl, core } = await pair();
    const task = await requester.submit(executorId, { description: "held", input: "x", agentId: "ctl" });
    await vi.waitFor(() => expect(ctl.isExecuting(task.id)).toBe(true));
    expect(await requester.cancel(executorId, task.id)).toBe(true);
    await vi.waitFor(async () => expect((await core.engine.getTask(task.id))?.status).toBe("cancelled"));
    expect(await requester.cancel(executorId, task.id)).toBe(false);
  });

  it("gives the executor's refusal as the typed error it sent, and stores nothing", async () => {
    const { requester, executorId, core } = await pair({ authorize: () => ({ allowed: false, reason: "not on this node" }) });
    for (const follow of [false, true]) {
      const refused = requester.submit(executorId, { description: "no", input: "x", agentId: "echo" }, undefined, { follow });
      await expect(refused).rejects.toBeInstanceOf(CoderClawError);
      await expect(refused).rejects.toMatchObject({ code: "PERMISSION_DENIED", message: "not on this node" });
    }
    expect(await core.engine.listTasks({})).toEqual([]);
  });


  it("a submission the engine refuses before it waits for the audit entry leaves no unhandled rejection when that entry then fails", async () => {
    // As when the node stops while a member's submission is admitted: the audit log's write fails after the refusal.
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason);
    process.on("unhandledRejection", onUnhandled);
    cleanups.push(() => void process.off("unhandledRejection", onUnhandled));
    const { requester, executorId, core } = await pair({
      authorize: () => ({ allowed: true, recorded: new Promise<void>((_, reject) => setTimeout(() => reject(new Error("audit log unavailable")), 50)) }),
    });
    await expect(requester.submit(executorId, { description: "no agent", input: "x", agentId: "no-such-agent" })).rejects.toBeInstanceOf(CoderClawError);
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(unhandled).toEqual([]);
    expect(await core.engine.listTasks({})).toEqual([]);
  });
  it("refuses a replayed submission and a forged signature", async () => {
    const { submitter, raw, core } = await pair();
    const channel = raw();
    const one = envelope(submitter, "once");
    const sig = submitter.sign(submitSignedBytes([one]));
    expect((await rawSubmit(channel, [one], sig))[0]).toMatchObject({ t: "state", rid: 1 });
    expect((await rawSubmit(channel, [one], sig))[0]).toMatchObject({ t: "err", rid: 1, code: "PERMISSION_DENIED" });

    const forger = deviceIdentityFromSeed(randomBytes(32));
    const two = [envelope(submitter, "forged a"), envelope(submitter, "forged b")];
    const answers = await rawSubmit(channel, two, forger.sign(submitSignedBytes(two)));
    expect(answers).toEqual([
      { t: "err", rid: 1, code: "PERMISSION_DENIED", message: "submission signature does not verify" },
      { t: "err", rid: 2, code: "PERMISSION_DENIED", message: "submission signature does not verify" },
    ]);
    expect((await core.engine.listTasks({})).map((t) => t.description)).toEqual(["once"]);
  });

  it("renews the lease of a running task at the submitter until the task ends", async () => {
    const { requester, executorId, ctl } = await pair({ leaseIntervalMs: 20 });
    const task = await requester.submit(executorId, { description: "held", input: "x", agentId: "ctl" });
    await vi.waitFor(() => expect(requester.leaseOf(task.id)?.status).toBe("running"));
    const first = requester.leaseOf(task.id)!.at;
    await vi.waitFor(() => expect(requester.leaseOf(task.id)!.at).toBeGreaterThan(first));
    expect(presumedLost(requester.leaseOf(task.id), 0, 1_000)).toBe(false);
    ctl.complete(task.id);
    await vi.waitFor(() => expect(requester.leaseOf(task.id)).toBeUndefined());
  });
});

describe("presumedLost", () => {
  it("presumes a task lost only once neither its stream nor its lease spoke within the timeout", () => {
    const now = 100_000;
    expect(presumedLost(undefined, now - 10_001, 10_000, now)).toBe(true);
    expect(presumedLost(undefined, now - 10_000, 10_000, now)).toBe(false);
    expect(presumedLost({ at: now - 5_000, status: "running" }, 0, 10_000, now)).toBe(false);
    expect(presumedLost({ at: now - 10_001, status: "running" }, now - 20_000, 10_000, now)).toBe(true);
  });
});

describe("idempotency keys and free slots", () => {
  it("a repeated key gets the task it made, one after the other or together; another requester's same key makes its own", async () => {
    const { requester, executorId, core, requesterAs } = await pair();
    const request = { description: "keyed", input: "x", agentId: "echo" };
    const first = await requester.submit(executorId, request, undefined, { key: "k1" });
    const again = await requester.submit(executorId, request, undefined, { key: "k1" });
    expect(again.id).toBe(first.id);
    // Together: one signed message carries both, and the second must not race the first.
    const [x, y] = await Promise.all([requester.submit(executorId, request, undefined, { key: "k2" }), requester.submit(executorId, request, undefined, { key: "k2" }, )]);
    expect(y.id).toBe(x.id);
    expect(x.id).not.toBe(first.id);
    const other = await requesterAs(deviceIdentityFromSeed(randomBytes(32))).submit(executorId, request, undefined, { key: "k1" });
    expect(other.id).not.toBe(first.id);
    expect((await core.engine.listTasks()).length).toBe(3);
    // A followed repeat streams the task from its start.
    await vi.waitFor(async () => expect((await requester.get(executorId, first.id))?.status).toBe("completed"));
    const followed = await requester.submit(executorId, request, undefined, { key: "k1", follow: true });
    expect(followed.id).toBe(first.id);
    expect((await collect(requester.subscribe(executorId, first.id, 0))).at(-1)?.status).toBe("completed");
  });

  it("a repeated key in two messages at once, on two channels, gets one task", async () => {
    const { submitter, core, raw } = await pair();
    const keyed = (): Uint8Array =>
      encodeCanonical({ request: { description: "twice", input: "x", agentId: "echo" }, requester: submitter.peerId, meshId: MESH, issuedAt: Date.now(), nonce: randomBytes(16), key: "same" } satisfies SubmitEnvelope);
    const [one, two] = [keyed(), keyed()];
    const answers = await Promise.all([rawSubmit(raw(), [one], submitter.sign(submitSignedBytes([one]))), rawSubmit(raw(), [two], submitter.sign(submitSignedBytes([two])))]);
    const ids = answers.map(([a]) => (a?.t === "state" ? a.state?.id : JSON.stringify(a)));
    expect(ids[0]).toBe(ids[1]);
    expect((await core.engine.listTasks()).length).toBe(1);
  });

  it("a keyed submission finds a full executor BUSY, and a repeat of one it took still gets its task", async () => {
    const { requester, executorId, core } = await pair({ slots: 1 });
    const long = await requester.submit(executorId, { description: "long", input: "3000", agentId: "sleep" }, undefined, { key: "long" });
    const busy = await requester.submit(executorId, { description: "more", input: "x", agentId: "echo" }, undefined, { key: "more" }).catch((e: unknown) => e);
    expect((busy as CoderClawError).code).toBe("BUSY");
    expect((busy as CoderClawError).message).toBe(`no free slot on ${executorId}: 1 of 1 in use`);
    expect((await requester.submit(executorId, { description: "long", input: "3000", agentId: "sleep" }, undefined, { key: "long" })).id).toBe(long.id);
    expect(await requester.cancel(executorId, long.id)).toBe(true);
    await vi.waitFor(() => expect(core.engine.freeSlots()).toBe(1));
    const more = await requester.submit(executorId, { description: "more", input: "x", agentId: "echo" }, undefined, { key: "more" });
    expect(more.id).not.toBe(long.id);
    // Unkeyed work comes from no scheduler that would place it elsewhere: it queues, as before.
    await requester.submit(executorId, { description: "long again", input: "3000", agentId: "sleep" }, undefined, { key: "long again" });
    const queued = await requester.submit(executorId, { description: "unkeyed", input: "x", agentId: "echo" });
    expect(queued.status).toBe("pending");
    expect((await core.engine.listTasks()).length).toBe(4);
  });
});

describe("fencing: an executor stops a retryable task its submitter may re-place", () => {
  /** A signed `submit` of the sleep agent (retryable) for `ms`, asking for a fence, sent raw: this submitter never acknowledges a lease. */
  async function submitFenced(p: Pair, ms: number, fenceAfterMs: number, agentId = "sleep"): Promise<{ id: string; channel: MessageChannel<TaskMessage> }> {
    const env = encodeCanonical({
      request: { description: "fenced", input: String(ms), agentId },
      requester: p.submitter.peerId,
      meshId: MESH,
      issuedAt: Date.now(),
      nonce: randomBytes(16),
      fenceAfterMs,
    } satisfies SubmitEnvelope);
    const channel = p.raw();
    const [answer] = await rawSubmit(channel, [env], p.submitter.sign(submitSignedBytes([env])));
    if (answer?.t !== "state" || answer.state === null) throw new Error(`unexpected answer ${JSON.stringify(answer)}`);
    return { id: answer.state.id, channel };
  }

  it("a submitter that acknowledges no renewal sees its task stopped as superseded before it would re-place it", async () => {
    const p = await pair({ leaseIntervalMs: 50 });
    const started = Date.now();
    const { id } = await submitFenced(p, 10_000, 800);
    await vi.waitFor(async () => expect((await p.core.engine.getTask(id))?.status).toBe("failed"), { timeout: 5000 });
    const ended = (await p.core.engine.getTask(id))!;
    expect(ended.error).toMatch(/^superseded: lease lost \(.* acknowledged nothing for \d+ ms; it re-places the task after 800 ms\)$/);
    expect(ended.completedAt!.getTime() - started).toBeLessThan(800);
  });

  it("stops a task at its fence time, not at the next renewal round", async () => {
    // Rounds 60 s apart: only the fence's own timer can stop the task in time.
    const p = await pair();
    const started = Date.now();
    const { id } = await submitFenced(p, 10_000, 800);
    await vi.waitFor(async () => expect((await p.core.engine.getTask(id))?.status).toBe("failed"), { timeout: 3000 });
    expect((await p.core.engine.getTask(id))!.completedAt!.getTime() - started).toBeLessThan(800);
  });

  it("an outcome reached past the fence (the process was frozen meanwhile) is recorded as superseded, not completed", async () => {
    const p = await pair();
    const { id } = await submitFenced(p, 0, 600, "ctl-retry");
    await vi.waitFor(() => expect(p.ctl.isExecuting(id)).toBe(true));
    // As under SIGSTOP: nothing runs, timers included, past the fence (480 ms); the outcome is the first thing to happen on waking.
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 700);
    p.ctl.complete(id);
    await vi.waitFor(async () => expect((await p.core.engine.getTask(id))?.status).toBe("failed"), { timeout: 5000 });
    expect((await p.core.engine.getTask(id))?.error).toMatch(/^superseded: lease lost/);
  });

  it("a submitter that acknowledges its renewals keeps its task running past many fence periods, to completion", async () => {
    const p = await pair({ leaseIntervalMs: 50 });
    const task = await p.requester.submit(p.executorId, { description: "kept", input: "1500", agentId: "sleep" }, undefined, { fenceAfterMs: 500 });
    await vi.waitFor(async () => expect((await p.core.engine.getTask(task.id))?.status).toBe("completed"), { timeout: 5000 });
  });

  it("work that is not retryable is never fenced: nobody re-places it", async () => {
    const p = await pair({ leaseIntervalMs: 50 });
    const env = encodeCanonical({
      request: { description: "once", input: "x", agentId: "ctl" },
      requester: p.submitter.peerId,
      meshId: MESH,
      issuedAt: Date.now(),
      nonce: randomBytes(16),
      fenceAfterMs: 500,
    } satisfies SubmitEnvelope);
    const [answer] = await rawSubmit(p.raw(), [env], p.submitter.sign(submitSignedBytes([env])));
    const id = answer?.t === "state" ? answer.state!.id : "";
    await new Promise((r) => setTimeout(r, 900));
    expect((await p.core.engine.getTask(id))?.status).toBe("running");
    p.ctl.complete(id);
    await vi.waitFor(async () => expect((await p.core.engine.getTask(id))?.status).toBe("completed"), { timeout: 5000 });
  });
});
