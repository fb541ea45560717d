import { readFile } from "node:fs/promises";
import { z } from "zod";
import { writeFileAtomic } from "./atomic-file.js";
import { fromBase64Url, fromHex, toBase64Url, toHex } from "./bytes.js";
import { InviteError, KeyFileError, type InviteErrorCode } from "./errors.js";
import { createInvite, type Invite } from "./invite.js";

/** An invite as the inviter files it. */
export interface IssuedInvite extends Invite {
  readonly createdAt: number;
  /** When it was redeemed; set once, never cleared. */
  readonly usedAt?: number;
  /** Device id that redeemed it. */
  readonly usedBy?: string;
  /** The comparison code of that pairing, which the joiner was shown too. */
  readonly comparisonCode?: string;
  /** Failed proofs against it so far. */
  readonly failures: number;
}

/** A refused pairing attempt, kept for `devices`/audit output. */
export interface InviteRefusal {
  readonly at: number;
  readonly code: InviteErrorCode;
  /** Hex invite id the attempt named. */
  readonly inviteId: string;
  /** Device id the attempt claimed, when known. */
  readonly joiner?: string;
}

/** Rate limits against guessing. */
export interface InviteBookLimits {
  /** Failed proofs after which an invite is burned (refused as rate limited). */
  readonly maxFailuresPerInvite: number;
  /** Failures (any invite) within `globalWindowMs` that lock all pairing. */
  readonly maxGlobalFailures: number;
  readonly globalWindowMs: number;
  /** How long the global lock lasts. */
  readonly lockoutMs: number;
}

/** Default limits: 5 tries per invite; 20 failures a minute lock pairing for 5 minutes. */
export const DEFAULT_INVITE_LIMITS: InviteBookLimits = {
  maxFailuresPerInvite: 5,
  maxGlobalFailures: 20,
  globalWindowMs: 60_000,
  lockoutMs: 5 * 60_000,
};

const recordSchema = z.strictObject({
  id: z.string().regex(/^[0-9a-f]{16}$/),
  meshId: z.string(),
  inviter: z.string(),
  addrs: z.array(z.string()),
  secret: z.string().regex(/^[A-Za-z0-9_-]{22}$/),
  level: z.enum(["verified", "trusted"]),
  expiresAt: z.number(),
  createdAt: z.number(),
  usedAt: z.number().optional(),
  usedBy: z.string().optional(),
  comparisonCode: z.string().regex(/^\d{6}$/).optional(),
  failures: z.number().int().min(0),
});

const stateSchema = z.strictObject({
  v: z.literal(1),
  invites: z.array(recordSchema),
  failures: z.array(z.number()),
  lockedUntil: z.number(),
  refusals: z.array(
    z.strictObject({
      at: z.number(),
      code: z.string(),
      inviteId: z.string(),
      joiner: z.string().optional(),
    }),
  ),
});

/** The persisted form of an {@link InviteBook}. */
export type InviteBookState = z.infer<typeof stateSchema>;

/** Where an invite book keeps its state. */
export interface InviteStorage {
  load(): Promise<InviteBookState | undefined>;
  save(state: InviteBookState): Promise<void>;
}

/** Keeps the book as a JSON file (mode 0600, atomic writes); a damaged file is an error, not an empty book. */
export function jsonFileInviteStorage(path: string): InviteStorage {
  return {
    async load() {
      let text: string;
      try {
        text = await readFile(path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
        throw new KeyFileError("KEY_IO", path, "cannot read invite book", err);
      }
      let parsed: unknown;
      try {
        parsed = JSON.parse(text);
      } catch (err) {
        throw new KeyFileError("KEY_CORRUPT", path, "invite book is not valid JSON", err);
      }
      const state = stateSchema.safeParse(parsed);
      if (!state.success) throw new KeyFileError("KEY_CORRUPT", path, "invite book has an unknown format");
      return state.data;
    },
    async save(state) {
      await writeFileAtomic(path, `${JSON.stringify(state)}\n`, { mode: 0o600 });
    },
  };
}

/** Keeps the book in memory only (a node that must forget its invites on restart). */
export function memoryInviteStorage(): InviteStorage {
  let saved: InviteBookState | undefined;
  return {
    load: async () => (saved === undefined ? undefined : structuredClone(saved)),
    save: async (state) => {
      saved = structuredClone(state);
    },
  };
}

const MAX_REFUSALS = 200;

/**
 * The inviter's record of invites it issued: single use, expiry, and rate
 * limits per invite and globally. Every refusal is an {@link InviteError}
 * with its own code and is recorded. State changes are made in memory before
 * any await, so two concurrent redemptions of one invite cannot both succeed.
 */
export class InviteBook {
  private readonly invites = new Map<string, IssuedInvite>();
  private failures: number[] = [];
  private lockedUntil = 0;
  private refusalLog: InviteRefusal[] = [];
  private saving: Promise<void> = Promise.resolve();
  // Refusals that change no counter (replays, expired, attempts while locked)
  // are kept in memory and written with the next real change, so a flood of
  // them cannot turn into a flood of disk writes.
  private dirty = false;

  private constructor(
    private readonly storage: InviteStorage,
    /** The limits in force. */
    readonly limits: InviteBookLimits,
  ) {}

  /** Opens a book, loading what the storage holds. */
  static async open(storage: InviteStorage, limits: Partial<InviteBookLimits> = {}): Promise<InviteBook> {
    const book = new InviteBook(storage, { ...DEFAULT_INVITE_LIMITS, ...limits });
    const state = await storage.load();
    if (state !== undefined) book.restore(state);
    return book;
  }

  /** Opens a book kept in a JSON file (conventionally `<dataDir>/identity/invites.json`). */
  static openFile(path: string, limits: Partial<InviteBookLimits> = {}): Promise<InviteBook> {
    return InviteBook.open(jsonFileInviteStorage(path), limits);
  }

  /** Creates, files and returns a fresh invite. */
  async create(options: Parameters<typeof createInvite>[0], now: number = Date.now()): Promise<Invite> {
    const invite = createInvite(options);
    this.invites.set(toHex(invite.id), { ...invite, createdAt: now, failures: 0 });
    await this.persist();
    return invite;
  }

  /** Every invite filed, oldest first. */
  list(): IssuedInvite[] {
    return [...this.invites.values()].sort((a, b) => a.createdAt - b.createdAt);
  }

  /** Recent refusals, oldest first (the last 200). */
  refusals(): readonly InviteRefusal[] {
    return this.refusalLog;
  }

  /**
   * Checks that `inviteId` names a live invite of `meshId`, before any proof is
   * asked for. Throws the refusal's {@link InviteError}.
   */
  async check(inviteId: Uint8Array, meshId: string, now: number = Date.now(), joiner?: string): Promise<IssuedInvite> {
    const found = this.lookup(toHex(inviteId), meshId, now, joiner);
    if (found instanceof InviteError) {
      await this.persistIfDirty();
      throw found;
    }
    return found;
  }

  /**
   * Redeems an invite: `prove` gets the secret and says whether the joiner's
   * proof matches. Success marks the invite used (by `joiner`, with the
   * pairing's `comparisonCode`) for good; a failed proof counts against the
   * invite and the global limit.
   */
  async redeem(
    inviteId: Uint8Array,
    meshId: string,
    joiner: string,
    prove: (secret: Uint8Array) => boolean,
    now: number = Date.now(),
    comparisonCode?: string,
  ): Promise<IssuedInvite> {
    const id = toHex(inviteId);
    const found = this.lookup(id, meshId, now, joiner);
    if (found instanceof InviteError) {
      await this.persistIfDirty();
      throw found;
    }
    if (!prove(found.secret)) {
      this.invites.set(id, { ...found, failures: found.failures + 1 });
      this.countFailure(now);
      const err = this.refuse("INVITE_WRONG_SECRET", id, now, joiner, "the invite's secret was not proven (wrong or altered invite)");
      await this.persist();
      throw err;
    }
    const used: IssuedInvite = { ...found, usedAt: now, usedBy: joiner, ...(comparisonCode !== undefined && { comparisonCode }) };
    this.invites.set(id, used);
    await this.persist();
    return used;
  }

  private lookup(id: string, meshId: string, now: number, joiner: string | undefined): IssuedInvite | InviteError {
    if (now < this.lockedUntil) {
      return this.refuse("INVITE_RATE_LIMITED", id, now, joiner, `pairing is locked after repeated failures until ${new Date(this.lockedUntil).toISOString()}`);
    }
    const invite = this.invites.get(id);
    if (invite === undefined) {
      this.countFailure(now);
      return this.refuse("INVITE_UNKNOWN", id, now, joiner, "this node issued no such invite");
    }
    if (invite.meshId !== meshId) {
      this.countFailure(now);
      return this.refuse("INVITE_OTHER_MESH", id, now, joiner, `the invite is for mesh ${invite.meshId}, not ${meshId}`);
    }
    if (invite.usedAt !== undefined) return this.refuse("INVITE_REPLAYED", id, now, joiner, "the invite was already used");
    if (invite.failures >= this.limits.maxFailuresPerInvite) {
      return this.refuse("INVITE_RATE_LIMITED", id, now, joiner, "the invite is burned after too many failed attempts");
    }
    if (now >= invite.expiresAt) return this.refuse("INVITE_EXPIRED", id, now, joiner, `the invite expired at ${new Date(invite.expiresAt).toISOString()}`);
    return invite;
  }

  private countFailure(now: number): void {
    this.dirty = true;
    const windowStart = now - this.limits.globalWindowMs;
    this.failures = this.failures.filter((at) => at > windowStart);
    this.failures.push(now);
    if (this.failures.length >= this.limits.maxGlobalFailures) {
      this.lockedUntil = now + this.limits.lockoutMs;
      this.failures = [];
    }
  }

  private refuse(code: InviteErrorCode, inviteId: string, at: number, joiner: string | undefined, message: string): InviteError {
    this.refusalLog.push(joiner === undefined ? { at, code, inviteId } : { at, code, inviteId, joiner });
    if (this.refusalLog.length > MAX_REFUSALS) this.refusalLog = this.refusalLog.slice(-MAX_REFUSALS);
    return new InviteError(code, message);
  }

  private restore(state: InviteBookState): void {
    for (const r of state.invites) {
      // The schema admits only 22-char base64url secrets, which always decode.
      const secret = fromBase64Url(r.secret) ?? new Uint8Array(16);
      this.invites.set(r.id, {
        id: fromHex(r.id),
        meshId: r.meshId,
        inviter: r.inviter,
        addrs: r.addrs,
        secret,
        level: r.level,
        expiresAt: r.expiresAt,
        createdAt: r.createdAt,
        failures: r.failures,
        ...(r.usedAt === undefined ? {} : { usedAt: r.usedAt }),
        ...(r.usedBy === undefined ? {} : { usedBy: r.usedBy }),
        ...(r.comparisonCode === undefined ? {} : { comparisonCode: r.comparisonCode }),
      });
    }
    this.failures = state.failures;
    this.lockedUntil = state.lockedUntil;
    this.refusalLog = state.refusals as InviteRefusal[];
  }

  private snapshot(): InviteBookState {
    return {
      v: 1,
      invites: [...this.invites.entries()].map(([id, r]) => ({
        id,
        meshId: r.meshId,
        inviter: r.inviter,
        addrs: [...r.addrs],
        secret: toBase64Url(r.secret),
        level: r.level,
        expiresAt: r.expiresAt,
        createdAt: r.createdAt,
        failures: r.failures,
        ...(r.usedAt === undefined ? {} : { usedAt: r.usedAt }),
        ...(r.usedBy === undefined ? {} : { usedBy: r.usedBy }),
        ...(r.comparisonCode === undefined ? {} : { comparisonCode: r.comparisonCode }),
      })),
      failures: [...this.failures],
      lockedUntil: this.lockedUntil,
      refusals: [...this.refusalLog],
    };
  }

  private persistIfDirty(): Promise<void> {
    return this.dirty ? this.persist() : this.saving.catch(() => undefined);
  }

  // Saves run one after another, each writing the state as of its call.
  private persist(): Promise<void> {
    this.dirty = false;
    const state = this.snapshot();
    this.saving = this.saving.catch(() => undefined).then(() => this.storage.save(state));
    return this.saving;
  }
}
