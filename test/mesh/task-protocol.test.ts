import { randomBytes } from "node:crypto";
import { peerIdFromString } from "@libp2p/peer-id";
import { afterEach, describe, expect, it, vi } from "vitest";
import { ed25519 } from "../../identity/index.js";
import { encodeCanonical, FramedChannel } from "../../protocols/framing/index.js";
import { createTaskCodec, submitSignedBytes, TASK_PROTOCOL, type SubmitEnvelope, type TaskMessage } from "../../protocols/task/index.js";
import { TaskClient } from "../../node/tasks/task-client.js";
import { CoderClawError } from "../../src/contract/errors.js";
import type { TaskEvent } from "../../src/contract/types.js";
import { formMesh, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await stop?.();
  stop = undefined;
});

async function twoNodes() {
  const mesh = await startNodes(2);
  stop = mesh.stop;
  await formMesh(mesh.nodes);
  return mesh.nodes as [(typeof mesh.nodes)[0], (typeof mesh.nodes)[0]];
}

/** Messages sent on any framed channel from now on; other protocols' too, which tests tell apart by type. */
function sentMessages(): TaskMessage[] {
  const sent: TaskMessage[] = [];
  const send = FramedChannel.prototype.send;
  vi.spyOn(FramedChannel.prototype, "send").mockImplementation(function (this: FramedChannel<unknown>, message: unknown) {
    sent.push(message as TaskMessage);
    return send.call(this, message);
  });
  return sent;
}

async function collect(events: AsyncIterable<TaskEvent>): Promise<TaskEvent[]> {
  const out: TaskEvent[] = [];
  for await (const e of events) out.push(e);
  return out;
}

describe("task protocol", () => {
  it("answers a followed submit of a quick task with its history, the outcome at most one update behind: the subscriber asks nothing more", async () => {
    const [a, b] = await twoNodes();
    const sent = sentMessages();
    const task = await a.client.submit(b.peerId, { description: "quick", input: "hi", agentId: "echo" }, undefined, { follow: true });
    const events = await collect(a.client.subscribe(b.peerId, task.id, 0));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.at(-1)).toMatchObject({ type: "status_changed", status: "completed" });
    const types = sent.map((m) => m.t);
    expect(types.filter((t) => t === "sub")).toEqual([]);
    expect(types.filter((t) => t === "accepted")).toHaveLength(1);
    // The outcome is told once it is durable: it may follow the answer in one update, never more.
    expect(types.filter((t) => t === "upd").length).toBeLessThanOrEqual(1);

    // A subscriber resuming after what it saw gets the rest from the same answer.
    const again = await a.client.submit(b.peerId, { description: "quick", input: "hi", agentId: "echo" }, undefined, { follow: true });
    const rest = await collect(a.client.subscribe(b.peerId, again.id, 2));
    expect(rest[0]?.seq).toBe(3);
    expect(rest.at(-1)?.status).toBe("completed");
  }, 60_000);

  it("leaves a followed task that ended out of later leases, and reports an unfollowed one there", async () => {
    const [a, b] = await twoNodes();
    const sent = sentMessages();
    let from = 0;
    // Leases sent once the followed task had ended: a round may well have caught it running before.
    const leased = (): string[] => sent.slice(from).flatMap((m) => (m.t === "lease" ? m.tasks.map((t) => t.id) : []));
    const followed = await a.client.submit(b.peerId, { description: "quick", input: "hi", agentId: "echo" }, undefined, { follow: true });
    expect((await collect(a.client.subscribe(b.peerId, followed.id, 0))).at(-1)?.status).toBe("completed");
    from = sent.length;
    const unfollowed = await a.client.submit(b.peerId, { description: "quick", input: "hi", agentId: "echo" });
    // Leases go out every second.
    await vi.waitFor(() => expect(leased()).toContain(unfollowed.id), { timeout: 5_000 });
    expect(leased()).not.toContain(followed.id);
    // The submitter keeps no lease of a task it knows has ended, however it learnt so.
    expect(a.client.leaseOf(followed.id)).toBeUndefined();
    await vi.waitFor(() => expect(a.client.leaseOf(unfollowed.id)).toBeUndefined(), { timeout: 5_000 });
  }, 60_000);

  it("streams a longer followed task in batches after the answer, and lets an unclaimed one go past its limit", async () => {
    const [a, b] = await twoNodes();
    const task = await a.client.submit(b.peerId, { description: "steps", input: "200 8", agentId: "sleep" }, undefined, { follow: true });
    const events = await collect(a.client.subscribe(b.peerId, task.id, 0));
    expect(events.map((e) => e.seq)).toEqual(events.map((_, i) => i + 1));
    expect(events.filter((e) => e.type === "progress_updated").length).toBeGreaterThanOrEqual(8);
    expect(events.at(-1)?.status).toBe("completed");

    // Nobody claims this one in time: the client stops holding its events and a late subscriber asks afresh.
    const client = new TaskClient({ libp2p: a.libp2p, identity: a.identity, meshId: () => a.membership.meshId, maxUnclaimedEvents: 3 });
    try {
      const sent = sentMessages();
      const late = await client.submit(b.peerId, { description: "steps", input: "100 8", agentId: "sleep" }, undefined, { follow: true });
      await vi.waitFor(async () => expect((await b.core.engine.getTask(late.id))?.status).toBe("completed"), { timeout: 10_000 });
      expect(sent.map((m) => m.t)).toContain("unsub");
      const all = await collect(client.subscribe(b.peerId, late.id, 0));
      expect(sent.map((m) => m.t)).toContain("sub");
      expect(all.map((e) => e.seq)).toEqual(all.map((_, i) => i + 1));
      expect(all.at(-1)?.status).toBe("completed");
    } finally {
      await client.close();
    }
  }, 60_000);

  it("sends what is submitted in one turn under load as one message with one signature, answering each on its own rid", async () => {
    const [a, b] = await twoNodes();
    const sent = sentMessages();
    const verify = ed25519.verify.bind(ed25519);
    let submitChecks = 0;
    vi.spyOn(ed25519, "verify").mockImplementation((sig, message, key) => {
      if (Buffer.from(message).toString("latin1").startsWith("coderclaw/task/submit/")) submitChecks++;
      return verify(sig, message, key);
    });
    const tasks = await Promise.all(
      Array.from({ length: 20 }, (_, i) => a.client.submit(b.peerId, { description: `burst ${i}`, input: String(i), agentId: "echo" }, undefined, { follow: true })),
    );
    // The first leaves at once, alone; the rest of the turn follow together.
    expect(sent.flatMap((m) => (m.t === "submit" ? [m.items.length] : []))).toEqual([1, 19]);
    expect(submitChecks).toBe(2);
    expect(new Set(tasks.map((t) => t.id)).size).toBe(20);
    for (const [i, task] of tasks.entries()) {
      expect(task.description).toBe(`burst ${i}`);
      expect((await collect(a.client.subscribe(b.peerId, task.id, 0))).at(-1)).toMatchObject({ status: "completed" });
      expect((await b.core.engine.getTask(task.id))?.output).toBe(String(i));
    }
  }, 60_000);

  it("refuses every submission of a message its signature does not cover, stores none, and refuses a replayed one", async () => {
    const [a, b] = await twoNodes();
    const envelope = (description: string): Uint8Array =>
      encodeCanonical({
        request: { description, input: "x", agentId: "echo" },
        requester: a.peerId,
        meshId: a.membership.meshId!,
        issuedAt: Date.now(),
        nonce: randomBytes(16),
      } satisfies SubmitEnvelope);
    const stream = await a.libp2p.dialProtocol(peerIdFromString(b.peerId), TASK_PROTOCOL);
    const channel = new FramedChannel<TaskMessage>({ stream, codec: createTaskCodec(), peer: b.peerId });
    // The answers to the next `count` submissions; lease renewals arrive on the same channel every second.
    const answers = async (count: number): Promise<TaskMessage[]> => {
      const out: TaskMessage[] = [];
      while (out.length < count) {
        const m = await channel.receive({ timeoutMs: 10_000 });
        if (m.t !== "lease") out.push(m);
      }
      return out.sort((x, y) => ("rid" in x && "rid" in y ? x.rid - y.rid : 0));
    };
    const [one, two, three] = [envelope("one"), envelope("two"), envelope("three")];
    const sign = (envelopes: Uint8Array[]): Uint8Array => a.identity.sign(submitSignedBytes(envelopes));

    // Signed for [one, two]; sent as [one, three], then as [two, one]: nothing verifies.
    await channel.send({ t: "submit", sig: sign([one, two]), items: [{ rid: 1, envelope: one }, { rid: 2, envelope: three }] });
    await channel.send({ t: "submit", sig: sign([one, two]), items: [{ rid: 3, envelope: two }, { rid: 4, envelope: one }] });
    for (const m of await answers(4)) expect(m).toMatchObject({ t: "err", code: "PERMISSION_DENIED", message: "submission signature does not verify" });
    expect(await b.core.engine.listTasks()).toEqual([]);

    // Signed as sent: both stored; sent again: both refused as replays.
    const sig = sign([one, two]);
    await channel.send({ t: "submit", sig, items: [{ rid: 5, envelope: one }, { rid: 6, envelope: two }] });
    expect((await answers(2)).map((m) => m.t)).toEqual(["state", "state"]);
    await channel.send({ t: "submit", sig, items: [{ rid: 7, envelope: one }, { rid: 8, envelope: two }] });
    for (const m of await answers(2)) expect(m).toMatchObject({ t: "err", code: "PERMISSION_DENIED", message: "replayed submission" });
    expect((await b.core.engine.listTasks()).map((t) => t.description).sort()).toEqual(["one", "two"]);
    await channel.close();
  }, 60_000);

  it("cancels a remote task before it starts when its audit entry cannot be written", async () => {
    const [a, b] = await twoNodes();
    await b.security.audit.close();
    const refused = await a.client.submit(b.peerId, { description: "unrecorded", input: "x", agentId: "echo" }, undefined, { follow: true }).catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(CoderClawError);
    expect((refused as CoderClawError).code).toBe("PERMISSION_DENIED");
    expect((refused as Error).message).toMatch(/audit log unavailable/);
    const [cancelled] = await b.core.engine.listTasks({ status: "cancelled" });
    expect(cancelled?.description).toBe("unrecorded");
    const history = await b.core.engine.getTaskEvents(cancelled!.id);
    expect(history.map((e) => e.status)).toEqual(["pending", "cancelled"]);
    expect(history.at(-1)?.message).toMatch(/^not admitted: audit log unavailable/);
  }, 60_000);
});
