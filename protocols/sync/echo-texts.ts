import { createHash } from "node:crypto";

/**
 * A run of a patch's changes left out because the receiver sent that very
 * text to the sender: `n` bytes at offset `at` of the changes as rebuilt, whose
 * SHA-256 is `h`.
 */
export interface EchoRef {
  at: number;
  n: number;
  h: Uint8Array;
}

/**
 * Texts that came from a peer and are about to go back to it inside replicated
 * changes. An executor streams a routed task's output to its submitter, which
 * writes it into its own task document; that document then replicates back to
 * the executor. Each side remembers the texts of that exchange (bounded, for a
 * short while), so the submitter leaves them out of its patches to the
 * executor and the executor puts them back from what it sent. The rebuilt
 * changes are checked like any others (the writer's signature over the heads
 * they reach, the writer rule), so a reference can only ever rebuild what the
 * writer signed, and only from a text the receiver itself sent that peer.
 */
export interface EchoTexts {
  /** This node sent `text` to `peer`: a patch from `peer` may refer to it. */
  sent(peer: string, text: string): void;
  /** This node received `text` from `peer`: a patch to `peer` may leave it out. */
  received(peer: string, text: string): void;
  /** `changes` with the texts received from `peer` found in them left out; undefined when none is. */
  elide(peer: string, changes: Uint8Array): { changes: Uint8Array; refs: EchoRef[] } | undefined;
  /** The changes `refs` left out, rebuilt from what this node sent `peer`; undefined when one is not held or the refs do not fit. */
  restore(peer: string, changes: Uint8Array, refs: readonly EchoRef[], maxBytes: number): Uint8Array | undefined;
}

/** Options of {@link createEchoTexts}. */
export interface EchoTextsOptions {
  /** Shorter texts are not worth a reference. Default 1 KiB. */
  minBytes?: number;
  /** Bytes remembered on each side, all peers together; the oldest go first. Default 64 MiB. */
  maxBytes?: number;
  /** A text is forgotten this long after it was remembered. Default 2 minutes. */
  ttlMs?: number;
  /**
   * Texts remembered per peer on each side; the peer's oldest go first. Each
   * patch to a peer is searched for every text held from it, so this bounds
   * that cost however many small texts a member streams. Default 1,024.
   */
  maxTextsPerPeer?: number;
}

interface Held {
  peer: string;
  key: string;
  bytes: Buffer;
  at: number;
}

/** The form a text takes inside a task document's history entry: a JSON string's content, as UTF-8. */
function asStored(text: string): Buffer {
  return Buffer.from(JSON.stringify(text).slice(1, -1));
}

const digest = (bytes: Uint8Array): Buffer => createHash("sha256").update(bytes).digest();

/**
 * One side's memory of texts per peer, in arrival order, bounded in bytes and
 * age. A text is used once: the change that carries it goes to its peer once.
 */
class TextMemory {
  readonly #byPeer = new Map<string, Map<string, Held>>();
  /** Every held text, oldest first, for the bounds. */
  readonly #order = new Map<Held, true>();
  #bytes = 0;

  constructor(
    readonly maxBytes: number,
    readonly ttlMs: number,
    readonly maxPerPeer: number,
  ) {}

  add(peer: string, bytes: Buffer): void {
    const now = Date.now();
    this.#prune(now);
    if (bytes.byteLength > this.maxBytes) return;
    const held: Held = { peer, key: digest(bytes).toString("hex"), bytes, at: now };
    const texts = this.#byPeer.get(peer) ?? new Map<string, Held>();
    if (texts.has(held.key)) return;
    if (texts.size >= this.maxPerPeer) this.drop(texts.values().next().value!);
    texts.set(held.key, held);
    this.#byPeer.set(peer, texts);
    this.#order.set(held, true);
    this.#bytes += bytes.byteLength;
    while (this.#bytes > this.maxBytes) this.drop(this.#order.keys().next().value!);
  }

  of(peer: string): Iterable<Held> {
    this.#prune(Date.now());
    return this.#byPeer.get(peer)?.values() ?? [];
  }

  get(peer: string, key: string): Held | undefined {
    return this.#byPeer.get(peer)?.get(key);
  }

  #prune(now: number): void {
    for (const held of this.#order.keys()) {
      if (now - held.at <= this.ttlMs) return;
      this.drop(held);
    }
  }

  drop(held: Held): void {
    if (!this.#order.delete(held)) return;
    this.#bytes -= held.bytes.byteLength;
    const texts = this.#byPeer.get(held.peer);
    texts?.delete(held.key);
    if (texts?.size === 0) this.#byPeer.delete(held.peer);
  }
}

/** See {@link EchoTexts}. */
export function createEchoTexts(options: EchoTextsOptions = {}): EchoTexts {
  const minBytes = options.minBytes ?? 1024;
  const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
  const ttlMs = options.ttlMs ?? 120_000;
  const perPeer = options.maxTextsPerPeer ?? 1024;
  const sent = new TextMemory(maxBytes, ttlMs, perPeer);
  const received = new TextMemory(maxBytes, ttlMs, perPeer);

  return {
    sent(peer, text) {
      if (text.length * 3 < minBytes) return;
      const bytes = asStored(text);
      if (bytes.byteLength >= minBytes) sent.add(peer, bytes);
    },
    received(peer, text) {
      if (text.length * 3 < minBytes) return;
      const bytes = asStored(text);
      if (bytes.byteLength >= minBytes) received.add(peer, bytes);
    },
    elide(peer, changes) {
      const whole = Buffer.from(changes.buffer, changes.byteOffset, changes.byteLength);
      const found: Array<{ held: Held; at: number }> = [];
      for (const held of received.of(peer)) {
        const at = whole.indexOf(held.bytes);
        if (at >= 0) found.push({ held, at });
      }
      if (found.length === 0) return undefined;
      found.sort((x, y) => x.at - y.at);
      const parts: Buffer[] = [];
      const refs: EchoRef[] = [];
      let cursor = 0;
      for (const { held, at } of found) {
        // Two texts may overlap (one inside another): the first found wins, the other stays in the bytes.
        if (at < cursor) continue;
        parts.push(whole.subarray(cursor, at));
        refs.push({ at, n: held.bytes.byteLength, h: Buffer.from(held.key, "hex") });
        cursor = at + held.bytes.byteLength;
        received.drop(held);
      }
      parts.push(whole.subarray(cursor));
      return { changes: Buffer.concat(parts), refs };
    },
    restore(peer, changes, refs, limit) {
      const parts: Uint8Array[] = [];
      const used: Held[] = [];
      let from = 0;
      let rebuilt = 0;
      for (const ref of refs) {
        const literal = ref.at - rebuilt;
        const held = sent.get(peer, Buffer.from(ref.h).toString("hex"));
        if (literal < 0 || from + literal > changes.byteLength || held === undefined || held.bytes.byteLength !== ref.n) return undefined;
        parts.push(changes.subarray(from, from + literal), held.bytes);
        used.push(held);
        from += literal;
        rebuilt = ref.at + ref.n;
        if (rebuilt > limit) return undefined;
      }
      if (rebuilt + changes.byteLength - from > limit) return undefined;
      parts.push(changes.subarray(from));
      for (const held of used) sent.drop(held);
      return Buffer.concat(parts);
    },
  };
}
