import { generateKeyPair } from "@libp2p/crypto/keys";
import type { PrivateKey } from "@libp2p/interface";
import { peerIdFromPrivateKey } from "@libp2p/peer-id";
import { afterEach, describe, expect, it } from "vitest";
import { askNodeRecord, CAPS_FIRST_REQUEST, capsRequestShape, serveNodeRecord } from "../../../protocols/capability/exchange.js";
import { createCapsCodec, type CapsMessage } from "../../../protocols/capability/messages.js";
import { signNodeRecord, type NodeRecord, type SignedNodeRecord } from "../../../protocols/capability/node-record.js";
import { FrameTimeoutError, MalformedFrameError, memoryChannelPair, RequestChannel, type MessageChannel } from "../../../protocols/framing/index.js";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  // In order: the asker's end closes first, which ends the member's serving.
  for (const c of cleanups.splice(0)) await c();
});

async function device(): Promise<{ key: PrivateKey; id: string }> {
  const key = await generateKeyPair("Ed25519");
  return { key, id: peerIdFromPrivateKey(key).toString() };
}

const offer = (peerId: string, seq = 1): NodeRecord => ({
  peerId,
  agents: ["echo"],
  skills: ["git"],
  capabilities: ["shell"],
  load: 2,
  maxConcurrency: 4,
  version: "0.1.0",
  seq,
  updatedAt: 1_700_000_000_000 + seq,
});

/** The asker's requests to `member` over an in-memory pair that encodes as the wire does; `far` is the member's end. */
function pair(member: string): { requests: RequestChannel<CapsMessage>; far: MessageChannel<CapsMessage> } {
  const [near, far] = memoryChannelPair<CapsMessage>({ codec: createCapsCodec(), peers: ["asker", member] });
  const requests = new RequestChannel(near, capsRequestShape, { firstRid: CAPS_FIRST_REQUEST });
  cleanups.push(() => requests.close());
  return { requests, far };
}

/** The member serving `record` on its end `far` until the asker's end closes. */
function serve(far: MessageChannel<CapsMessage>, record: () => Promise<SignedNodeRecord>): void {
  const serving = serveNodeRecord(far, record);
  cleanups.push(() => serving);
}

describe("caps exchange", () => {
  it("gets a member's record signed by it, with the round trip, for several asks at once", async () => {
    const member = await device();
    const signed = await signNodeRecord(offer(member.id), member.key);
    const { requests, far } = pair(member.id);
    serve(far, async () => signed);

    const answers = await Promise.all(Array.from({ length: 5 }, () => askNodeRecord(requests)));
    for (const answer of answers) {
      expect(answer.record).toEqual(offer(member.id));
      expect(answer.latencyMs).toBeGreaterThan(0);
    }
  });

  it("answers each get with the record as it is when asked, echoing the get's number", async () => {
    const member = await device();
    let seq = 0;
    const [asker, memberEnd] = memoryChannelPair<CapsMessage>({ codec: createCapsCodec(), peers: ["asker", member.id] });
    const serving = serveNodeRecord(memberEnd, () => signNodeRecord(offer(member.id, ++seq), member.key));
    // What the previous version sends: its first request is numbered 0.
    await asker.send({ t: "get", n: 0 });
    await asker.send({ t: "get", n: 7 });
    const answers: CapsMessage[] = [];
    for await (const m of asker) {
      answers.push(m);
      if (answers.length === 2) break;
    }
    expect(answers.map((m) => m.n)).toEqual([0, 7]);
    expect(answers.map((m) => m.t)).toEqual(["record", "record"]);
    await asker.close();
    await serving;
  });

  it("refuses a record that names another node, even one that node signed", async () => {
    const [member, other] = [await device(), await device()];
    const othersRecord = await signNodeRecord(offer(other.id), other.key);
    const { requests, far } = pair(member.id);
    serve(far, async () => othersRecord);
    await expect(askNodeRecord(requests)).rejects.toMatchObject({ name: MalformedFrameError.name, peer: member.id, message: `${member.id} answered with the record of ${other.id}` });
  });

  it("refuses a record naming the member but signed by another key", async () => {
    const [member, impostor] = [await device(), await device()];
    const forged = await signNodeRecord(offer(member.id), impostor.key);
    const { requests, far } = pair(member.id);
    serve(far, async () => forged);
    await expect(askNodeRecord(requests)).rejects.toThrow(/invalid signature/);
  });

  it("gives up when the lookup's signal aborts or the deadline passes, and the channel still serves later asks", async () => {
    const member = await device();
    const signed = await signNodeRecord(offer(member.id), member.key);
    const { requests, far } = pair(member.id);
    let answering = false;
    serve(far, async () => {
      while (!answering) await new Promise((r) => setTimeout(r, 5));
      return signed;
    });

    const stopped = new Error("lookup over");
    const controller = new AbortController();
    setTimeout(() => controller.abort(stopped), 20);
    await expect(askNodeRecord(requests, { signal: controller.signal })).rejects.toBe(stopped);
    await expect(askNodeRecord(requests, { timeoutMs: 20 })).rejects.toBeInstanceOf(FrameTimeoutError);
    answering = true;
    // The member answers the abandoned asks first; those answers are dropped and this one gets its own.
    expect((await askNodeRecord(requests)).record).toEqual(offer(member.id));
  });
});
