import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import type { Libp2p, Stream } from "@libp2p/interface";
import { FileWriter } from "../src/workspace/file-writer.js";

/**
 * The least a ship can cost on this machine, as a baseline: a tree's files
 * sent over one libp2p stream (so encrypted, as every ship is), each hashed
 * by the sender as a snapshot hashes it and by the receiver as it checks what
 * arrives, and created by the receiver through the same writer threads that
 * materialise a workspace. No manifest, no blob store, no requests, no
 * resuming: what is left of a ship when every part of it that a user does
 * not see is free. A ship that matched it would still be bound by it.
 */
export const SHIP_FLOOR_PROTOCOL = "/bench/ship-floor/1.0.0";

/** A file's frame head: path length, mode, size (u32 BE each), then its 32-byte digest. */
const HEAD_BYTES = 12 + 32;
/** Bytes the sender gathers into one write. */
const FLUSH_BYTES = 1024 * 1024;

/** Serve the floor's receiving end: each stream's files go into a fresh directory under `root`; one byte answers once all are created. */
export async function serveShipFloor(libp2p: Libp2p, root: string): Promise<void> {
  let runs = 0;
  await libp2p.handle(SHIP_FLOOR_PROTOCOL, (stream) => {
    const dir = join(root, `floor-${runs++}`);
    const writer = new FileWriter({ threads: 2 });
    const made = new Set<string>();
    const created: Array<Promise<unknown>> = [];
    /** Bytes received and not yet taken: chunks joined only once a whole frame is among them. */
    let chunks: Uint8Array[] = [];
    let held = 0;
    let expected = -1;
    const take = (n: number): Buffer | undefined => {
      if (held < n) return undefined;
      const all = chunks.length === 1 ? Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, chunks[0]!.byteLength) : Buffer.concat(chunks);
      chunks = all.byteLength > n ? [all.subarray(n)] : [];
      held -= n;
      return all.subarray(0, n);
    };
    const peek = (n: number): Buffer | undefined => {
      if (held < n) return undefined;
      if (chunks[0]!.byteLength < n) chunks = [Buffer.concat(chunks)];
      return Buffer.from(chunks[0]!.buffer, chunks[0]!.byteOffset, n);
    };
    stream.addEventListener("message", (e) => {
      const data = e.data instanceof Uint8Array ? e.data : e.data.subarray();
      chunks.push(data);
      held += data.byteLength;
      if (expected < 0) {
        const count = take(4);
        if (count === undefined) return;
        expected = count.readUInt32BE(0);
      }
      for (let head = peek(HEAD_BYTES); head !== undefined; head = peek(HEAD_BYTES)) {
        const pathLength = head.readUInt32BE(0);
        const mode = head.readUInt32BE(4);
        const size = head.readUInt32BE(8);
        const digest = head.toString("hex", 12, HEAD_BYTES);
        const frame = take(HEAD_BYTES + pathLength + size);
        if (frame === undefined) break;
        const path = frame.toString("utf8", HEAD_BYTES, HEAD_BYTES + pathLength);
        const bytes = frame.subarray(HEAD_BYTES + pathLength);
        if (createHash("sha256").update(bytes).digest("hex") !== digest) throw new Error(`${path} does not hash to its digest`);
        const target = join(dir, path);
        const parent = dirname(target);
        if (!made.has(parent)) {
          mkdirSync(parent, { recursive: true });
          made.add(parent);
        }
        created.push(writer.create(target, mode, [bytes]));
      }
      if (created.length === expected) {
        expected = -1;
        void Promise.all(created).then(async () => {
          await writer.close();
          stream.send(new Uint8Array([1]));
        });
      }
    });
  });
}

/** The regular files under `tree` (its `.git` left out), as paths relative to it. */
export function treeFiles(tree: string): string[] {
  return (readdirSync(tree, { recursive: true, withFileTypes: true }) as Array<{ name: string; parentPath?: string; path?: string; isFile(): boolean }>)
    .filter((e) => e.isFile())
    .map((e) => relative(tree, join(e.parentPath ?? e.path!, e.name)))
    .filter((p) => p !== ".git" && !p.startsWith(".git/"));
}

/** Sends every file of `tree` on an open floor stream, each read and hashed as it goes; ms until the receiver has created them all. */
export async function shipFloor(stream: Stream, tree: string): Promise<number> {
  const acked = new Promise<void>((resolve) => stream.addEventListener("message", () => resolve(), { once: true }));
  const t0 = performance.now();
  const files = treeFiles(tree);
  const count = Buffer.alloc(4);
  count.writeUInt32BE(files.length);
  stream.send(count);
  // Files go out in writes of about a MiB, as a ship's runs of small blobs do: a write per small file cost more than its bytes.
  let parts: Buffer[] = [];
  let partBytes = 0;
  const flush = async (): Promise<void> => {
    if (stream.writableNeedsDrain) await stream.onDrain();
    stream.send(parts.length === 1 ? parts[0]! : Buffer.concat(parts, partBytes));
    parts = [];
    partBytes = 0;
  };
  for (const path of files) {
    const full = join(tree, path);
    const bytes = readFileSync(full);
    const name = Buffer.from(path, "utf8");
    const head = Buffer.alloc(HEAD_BYTES);
    head.writeUInt32BE(name.byteLength, 0);
    head.writeUInt32BE(statSync(full).mode & 0o777, 4);
    head.writeUInt32BE(bytes.byteLength, 8);
    createHash("sha256").update(bytes).digest().copy(head, 12);
    parts.push(head, name, bytes);
    partBytes += HEAD_BYTES + name.byteLength + bytes.byteLength;
    if (partBytes >= FLUSH_BYTES) await flush();
  }
  if (partBytes > 0) await flush();
  await acked;
  return performance.now() - t0;
}
