import { createHash } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { memoryChannelPair, type MessageChannel } from "../../../protocols/framing/index.js";
import { createStatementsCodec, MAX_IDS_PER_MESSAGE, runStatementsSession, type ItemSet, type RefusedItem, type StatementsMessage, type WireItem } from "../../../protocols/statements/index.js";

/** A set of texts keyed by their SHA-256, the way policy texts are: an item is valid when its id is its hash. */
function textSet(texts: string[] = []): ItemSet & { items: Map<string, WireItem> } {
  const items = new Map<string, WireItem>();
  const hash = (bytes: Uint8Array): string => createHash("sha256").update(bytes).digest("hex");
  for (const t of texts) {
    const bytes = new TextEncoder().encode(t);
    items.set(hash(bytes), { id: hash(bytes), kind: "text", bytes });
  }
  return {
    items,
    get size() {
      return items.size;
    },
    digest: () => createHash("sha256").update([...items.keys()].sort().join(",")).digest("hex"),
    ids: () => [...items.keys()].sort(),
    get: (id) => items.get(id),
    async add(offered) {
      const refused: RefusedItem[] = [];
      for (const item of offered) {
        if (hash(item.bytes) !== item.id) refused.push({ id: item.id, kind: item.kind, reason: "not the hash of its text", offence: true });
        else items.set(item.id, item);
      }
      return { refused };
    },
  };
}

const ends: MessageChannel<StatementsMessage>[] = [];
afterEach(async () => {
  await Promise.all(ends.splice(0).map((e) => e.close()));
});

function pair(): [MessageChannel<StatementsMessage>, MessageChannel<StatementsMessage>] {
  const p = memoryChannelPair<StatementsMessage>({ codec: createStatementsCodec() });
  ends.push(...p);
  return p;
}

describe("statements session over an in-memory channel", () => {
  it("both sides end with the union, ids sent over several messages when there are many", async () => {
    const left = textSet(Array.from({ length: MAX_IDS_PER_MESSAGE + 50 }, (_, i) => `left ${i}`));
    const right = textSet(["right 1", "right 2", "left 3"]);
    const [a, b] = pair();
    const sessions = [runStatementsSession(a, left), runStatementsSession(b, right)];
    const want = new Set([...left.ids(), ...right.ids()]);
    await expect.poll(() => left.size === want.size && right.size === want.size, { timeout: 10_000 }).toBe(true);
    expect(left.digest()).toBe(right.digest());
    await a.close();
    await Promise.allSettled(sessions);
  });

  it("sends nothing but its digest to a peer that holds the same items", async () => {
    const [a, b] = pair();
    const sent: string[] = [];
    const watch = (channel: MessageChannel<StatementsMessage>): MessageChannel<StatementsMessage> => ({
      peer: channel.peer,
      get closed() {
        return channel.closed;
      },
      get failure() {
        return channel.failure;
      },
      send: (m) => (sent.push(m.t), channel.send(m)),
      close: () => channel.close(),
      abort: (error) => channel.abort(error),
      [Symbol.asyncIterator]: () => channel[Symbol.asyncIterator](),
    });
    void runStatementsSession(watch(a), textSet(["x", "y"]));
    void runStatementsSession(watch(b), textSet(["y", "x"]));
    await expect.poll(() => sent.length).toBe(2);
    await new Promise((r) => setTimeout(r, 50));
    expect(sent).toEqual(["have", "have"]);
  });

  it("reports an item that is not what it claims and ends the session; the set keeps nothing of it", async () => {
    const honest = textSet(["mine"]);
    const [a, b] = pair();
    const refused: RefusedItem[] = [];
    const session = runStatementsSession(a, honest, (r) => refused.push(r));
    await b.send({ t: "items", items: [{ id: "ab".repeat(32), kind: "text", bytes: new TextEncoder().encode("not that") }] });
    await expect(session).rejects.toThrow(/statements session cut: not the hash of its text/);
    expect(refused).toEqual([{ id: "ab".repeat(32), kind: "text", reason: "not the hash of its text", offence: true }]);
    expect(honest.size).toBe(1);
  });
});
