import { createHash } from "node:crypto";
import { decodeStatement, type SignedStatement } from "../../identity/index.js";
import { MAX_ITEM_BYTES } from "../../protocols/statements/messages.js";
import type { ItemSet, RefusedItem } from "../../protocols/statements/session.js";
import type { Database } from "../../src/storage/level-database.js";
import type { WriteOp } from "../../src/storage/write-batcher.js";

/** What an item is: a signed statement (keyed by its id) or a policy text (keyed by its SHA-256). */
export type ItemKind = "statement" | "text";

/** One self-authenticating item of the set, as stored and sent. */
export interface SetItem {
  id: string;
  kind: ItemKind;
  bytes: Uint8Array;
}

/** Why an offered item was not taken. */
export type { RefusedItem } from "../../protocols/statements/session.js";

/** Options of {@link StatementSet.open}. */
export interface StatementSetOptions {
  db: Database;
  /** The database's group commit. */
  write: (ops: WriteOp[]) => Promise<void>;
  /**
   * Whether a verified statement belongs here (this node's mesh); others are
   * refused so a member cannot fill the set with statements of no effect.
   */
  admissible?: (statement: SignedStatement) => string | undefined;
}

/** Told of items just added, with the peer they came from (undefined for this node's own). */
export type AddedListener = (items: readonly SetItem[], from: string | undefined) => void;

const PREFIX = "signed:";
/** Valid statements held back until they belong (see `#parked`). */
const MAX_PARKED = 1000;
const decoder = new TextDecoder("utf-8", { fatal: true });

/**
 * The mesh's signed items as a grow-only set: trust certificates, revocations,
 * role grants and policies (each verified alone and keyed by its id), and
 * policy texts (keyed by their SHA-256). An item is checked before it is kept,
 * kept under its own key in one write, and never removed or replaced: whoever
 * sends what, the set only grows by valid items, and two nodes holding the same
 * items hold the same set.
 */
export class StatementSet implements ItemSet {
  readonly #items = new Map<string, SetItem>();
  readonly #statements = new Map<string, SignedStatement>();
  readonly #listeners = new Set<AddedListener>();
  #sorted: string[] | undefined;
  #digest: string | undefined;
  /** Additions run one at a time, so two offers of one item store it once. */
  #serial: Promise<unknown> = Promise.resolve();
  /**
   * Valid statements that did not belong yet (a revocation whose issuer's
   * certificate has not arrived), tried again whenever the set grows: the set a
   * node ends with must not depend on the order items came in. Bounded; the
   * oldest go first.
   */
  readonly #parked = new Map<string, SetItem>();

  private constructor(private readonly options: StatementSetOptions) {}

  /** Load every item held. An item that no longer verifies (edited on disk) is skipped, not trusted. */
  static async open(options: StatementSetOptions): Promise<StatementSet> {
    const set = new StatementSet(options);
    for await (const [key, value] of options.db.iterator({ gte: PREFIX, lt: PREFIX + "\uffff" })) {
      const [kind, id] = key.slice(PREFIX.length).split(":") as [ItemKind, string];
      const item = { id, kind, bytes: value };
      const checked = set.#check(item, false);
      if (!(checked instanceof Refusal)) set.#keep(item, checked);
    }
    return set;
  }

  get size(): number {
    return this.#items.size;
  }

  has(id: string): boolean {
    return this.#items.has(id);
  }

  get(id: string): SetItem | undefined {
    return this.#items.get(id);
  }

  /** Every id held, sorted. */
  ids(): string[] {
    return (this.#sorted ??= [...this.#items.keys()].sort());
  }

  /** SHA-256 of the sorted ids: equal on two nodes exactly when they hold the same items. */
  digest(): string {
    if (this.#digest === undefined) {
      const h = createHash("sha256");
      for (const id of this.ids()) h.update(id);
      this.#digest = h.digest("hex");
    }
    return this.#digest;
  }

  /** Every statement held, verified. */
  statements(): SignedStatement[] {
    return [...this.#statements.values()];
  }

  /** A policy text by its SHA-256, when held. */
  text(sha256: string): string | undefined {
    const item = this.#items.get(sha256);
    return item?.kind === "text" ? Buffer.from(item.bytes).toString("utf8") : undefined;
  }

  /** Subscribe to additions; returns an unsubscribe function. */
  onAdded(listener: AddedListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /**
   * Add items: each is checked alone, and those that pass and are new are
   * written in one batch, then announced. Resolves with what was added and what
   * was refused (nothing of a refused item is kept).
   */
  add(items: readonly SetItem[], from?: string): Promise<{ added: SetItem[]; refused: RefusedItem[] }> {
    const run = this.#serial.then(async () => {
      const added: SetItem[] = [];
      const refused: RefusedItem[] = [];
      const offered = new Map<string, SetItem>();
      for (const item of items) {
        const held = this.#items.get(item.id);
        // An item under an id held already is the same item or a forgery: nothing hashes to one id twice.
        if (held !== undefined && !Buffer.from(held.bytes).equals(Buffer.from(item.bytes))) {
          refused.push({ id: item.id, kind: item.kind, reason: `${item.kind} ${item.id.slice(0, 16)} differs from the one held under its id`, offence: true });
        } else if (held === undefined && !offered.has(item.id)) offered.set(item.id, item);
      }
      let pending = [...offered.values(), ...[...this.#parked.values()].filter((p) => !offered.has(p.id))];
      // Passes until nothing more is taken: a statement may belong here only once another of the same batch
      // is held (a revocation by a device whose certificate comes with it). Offences are final at once; what
      // does not belong yet is tried again in the next pass, and parked after the last.
      for (;;) {
        const fresh: Array<[SetItem, SignedStatement | undefined]> = [];
        const later: Array<[SetItem, Refusal]> = [];
        for (const item of pending) {
          const checked = this.#check(item, true);
          if (!(checked instanceof Refusal)) fresh.push([{ id: item.id, kind: item.kind, bytes: new Uint8Array(item.bytes) }, checked]);
          else if (checked.offence) refused.push({ id: item.id, kind: item.kind, reason: checked.reason, offence: true });
          else later.push([item, checked]);
        }
        if (fresh.length === 0) {
          for (const [item, why] of later) {
            this.#park(item);
            // Only what was offered now is reported; parked items were reported when they came.
            if (offered.has(item.id)) refused.push({ id: item.id, kind: item.kind, reason: why.reason, offence: false });
          }
          break;
        }
        await this.options.write(fresh.map(([item]) => ({ type: "put", key: `${PREFIX}${item.kind}:${item.id}`, value: item.bytes })));
        const now = fresh.map(([item, statement]) => {
          this.#keep(item, statement);
          return item;
        });
        added.push(...now);
        for (const listener of this.#listeners) listener(now, from);
        pending = later.map(([item]) => item);
      }
      return { added, refused };
    });
    this.#serial = run.catch(() => undefined);
    return run;
  }

  /** The verified statement of a valid item (undefined for a text), or why the item is refused. */
  #check(item: SetItem, fresh: boolean): SignedStatement | undefined | Refusal {
    const bad = (reason: string): Refusal => new Refusal(reason, true);
    if (item.bytes.byteLength > MAX_ITEM_BYTES) return bad(`item ${item.id.slice(0, 16)} is over ${MAX_ITEM_BYTES} bytes`);
    if (item.kind === "text") {
      try {
        decoder.decode(item.bytes);
      } catch {
        return bad(`policy text ${item.id.slice(0, 16)} is not UTF-8`);
      }
      const hash = createHash("sha256").update(item.bytes).digest("hex");
      return hash === item.id ? undefined : bad(`policy text does not hash to ${item.id.slice(0, 16)}`);
    }
    if (item.kind !== "statement") return bad(`unknown item kind ${String(item.kind).slice(0, 20)}`);
    let statement: SignedStatement;
    try {
      statement = decodeStatement(item.bytes);
    } catch (err) {
      return bad(`statement ${item.id.slice(0, 16)}: ${(err as Error).message}`);
    }
    if (statement.id !== item.id) return bad(`statement ${statement.id.slice(0, 16)} offered as ${item.id.slice(0, 16)}`);
    // What is already held was admissible when it came.
    const refusal = fresh ? this.options.admissible?.(statement) : undefined;
    return refusal === undefined ? statement : new Refusal(refusal, false);
  }

  #park(item: SetItem): void {
    this.#parked.delete(item.id);
    this.#parked.set(item.id, item);
    while (this.#parked.size > MAX_PARKED) this.#parked.delete(this.#parked.keys().next().value!);
  }

  #keep(item: SetItem, statement: SignedStatement | undefined): void {
    this.#parked.delete(item.id);
    this.#items.set(item.id, item);
    if (statement !== undefined) this.#statements.set(item.id, statement);
    this.#sorted = undefined;
    this.#digest = undefined;
  }
}

class Refusal {
  constructor(
    readonly reason: string,
    readonly offence: boolean,
  ) {}
}
