import { describe, expect, it } from "vitest";
import { createEchoTexts } from "../../../protocols/sync/echo-texts.js";

/** Bytes holding `text` as a task document's history entry does: inside a JSON string. */
const carrying = (text: string): Buffer => Buffer.from(`head ${JSON.stringify([{ seq: 1, message: text }])} tail`);
const lines = (n: number): string => Array.from({ length: n }, (_, i) => `${i}\n`).join("");

describe("texts left out of patches to the peer that sent them", () => {
  it("leaves out a text as stored (JSON-escaped), and the peer that sent it rebuilds the bytes exactly, once", () => {
    const [submitter, executor] = [createEchoTexts(), createEchoTexts()];
    const text = lines(2000);
    executor.sent("A", text);
    submitter.received("B", text);
    const whole = carrying(text);
    const cut = submitter.elide("B", whole)!;
    expect(cut.changes.byteLength).toBeLessThan(100);
    expect(Buffer.from(executor.restore("A", cut.changes, cut.refs, 1 << 20)!).equals(whole)).toBe(true);
    // Each side uses a text once: the change that carries it goes to its peer once.
    expect(submitter.elide("B", whole)).toBeUndefined();
    expect(executor.restore("A", cut.changes, cut.refs, 1 << 20)).toBeUndefined();
  });

  it("rebuilds only from what this node sent that very peer, within the size given, and never from a ref that does not fit", () => {
    const [submitter, executor] = [createEchoTexts(), createEchoTexts()];
    const text = lines(2000);
    submitter.received("B", text);
    const cut = submitter.elide("B", carrying(text))!;
    executor.sent("C", text);
    expect(executor.restore("A", cut.changes, cut.refs, 1 << 20), "a text sent to another member").toBeUndefined();
    executor.sent("A", text);
    expect(executor.restore("A", cut.changes, cut.refs, 1000), "past the size allowed").toBeUndefined();
    expect(executor.restore("A", cut.changes, [{ ...cut.refs[0]!, n: cut.refs[0]!.n - 1 }], 1 << 20), "a wrong length").toBeUndefined();
    expect(executor.restore("A", cut.changes, [{ ...cut.refs[0]!, at: cut.changes.byteLength + 1 }], 1 << 20), "past the bytes sent").toBeUndefined();
    expect(executor.restore("A", cut.changes, cut.refs, 1 << 20)).toBeDefined();
  });

  it("keeps no short text, and forgets the oldest past its byte bound and any past its age", async () => {
    const texts = createEchoTexts({ maxBytes: 12_000, ttlMs: 50 });
    texts.received("B", "short");
    expect(texts.elide("B", carrying("short"))).toBeUndefined();
    const [first, second] = [lines(1500), `${lines(1500)}x`];
    texts.received("B", first);
    texts.received("B", second);
    expect(texts.elide("B", carrying(first)), "the oldest went past the byte bound").toBeUndefined();
    await new Promise((r) => setTimeout(r, 80));
    expect(texts.elide("B", carrying(second)), "past its age").toBeUndefined();
  });

  it("holds at most so many texts per peer, the peer's oldest going first, so a member streaming many small texts bounds the search of each patch to it", () => {
    const texts = createEchoTexts({ maxTextsPerPeer: 2 });
    const [a, b, c] = ["a", "b", "c"].map((tag) => `${tag}${lines(400)}`) as [string, string, string];
    for (const text of [a, b, c]) texts.received("B", text);
    texts.received("C", a);
    const whole = Buffer.concat([carrying(a), carrying(b), carrying(c)]);
    expect(texts.elide("B", whole)!.refs).toHaveLength(2);
    expect(texts.elide("C", carrying(a))!.refs, "another peer's texts are its own").toHaveLength(1);
  });
});
