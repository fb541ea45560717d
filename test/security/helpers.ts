import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as A from "@automerge/automerge";
import { Level } from "level";
import { expect } from "vitest";
import type { SegmentDoc } from "../../src/security/audit/segments.js";
import { canonicalDecode, canonicalEncode, type AuditBody, type Signer } from "../../src/security/index.js";
import { signAuditEntry } from "../../src/security/audit/entry.js";
import { segmentDocId } from "../../src/security/audit/segments.js";

/** A real LevelDB in a fresh temp directory; `dispose` closes and deletes it. */
export async function tempLevel(): Promise<{ db: Level<string, Uint8Array>; dir: string; dispose: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), "cc-security-"));
  const db = new Level<string, Uint8Array>(join(dir, "db"), { valueEncoding: "view" });
  await db.open();
  return {
    db,
    dir,
    dispose: async () => {
      await db.close();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Rewrites one stored segment behind the audit log's back, the way an attacker with
 * access to the database directory would: load the Automerge document from its
 * LevelDB keys, change it, and store it back as a single snapshot.
 */
export async function tamperSegment(
  db: Level<string, Uint8Array>,
  author: string,
  segment: number,
  edit: (doc: SegmentDoc) => void,
): Promise<void> {
  const raw = db.sublevel<string, Uint8Array>("audit", { keyEncoding: "utf8", valueEncoding: "view" });
  const id = segmentDocId(author, segment);
  const keys: string[] = [];
  const parts: Uint8Array[] = [];
  for await (const [key, value] of raw.iterator({ gte: `${id}/`, lt: `${id}0` })) {
    keys.push(key);
    parts.push(value);
  }
  // The snapshot key sorts after the chunk keys; Automerge needs it first.
  const snapIndex = keys.indexOf(`${id}/snap`);
  if (snapIndex > 0) parts.unshift(...parts.splice(snapIndex, 1));
  if (parts.length === 0) throw new Error(`no stored segment ${id}`);
  const doc = A.change(A.load<SegmentDoc>(Buffer.concat(parts)), (d) => edit(d));
  await raw.batch([...keys.map((key) => ({ type: "del" as const, key })), { type: "put" as const, key: `${id}/snap`, value: A.save(doc) }]);
}

/**
 * Edits entry `index` of a segment quietly: its body's result is set to `result`,
 * its original signature kept. Asserts first that the entry is seq `seq` with the
 * other result, so a test edits the entry it means to.
 */
export function flipResult(doc: SegmentDoc, index: number, seq: number, result: AuditBody["result"]): void {
  const stored = doc.entries[index] as Uint8Array;
  const sig = stored.subarray(stored.length - 64);
  const fields = canonicalDecode(stored.subarray(0, stored.length - 64)) as { seq: number; body: AuditBody };
  expect(fields).toMatchObject({ seq, body: { result: result === "allowed" ? "denied" : "allowed" } });
  fields.body.result = result;
  doc.entries[index] = Buffer.concat([canonicalEncode(fields), sig]);
}

/**
 * The encoded entries 1..`length` of a hash chain, entry `seq` signed by
 * `signerAt(seq)` with body `bodyOf(seq)` at time 1000 + seq, as another node's
 * log arrives by replication.
 */
export function signedChain(signerAt: (seq: number) => Signer, length: number, bodyOf: (seq: number) => AuditBody): Uint8Array[] {
  const out: Uint8Array[] = [];
  let prev: string | null = null;
  for (let seq = 1; seq <= length; seq++) {
    const e = signAuditEntry(signerAt(seq), seq, prev, 1_000 + seq, bodyOf(seq));
    out.push(e.bytes);
    prev = e.entry.hash;
  }
  return out;
}

/** A syntactically valid mesh id (identity/ derives real ones from a genesis statement). */
export function meshIdFor(letter: string): string {
  return `mesh-${letter.repeat(26)}`;
}
