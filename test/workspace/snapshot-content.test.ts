import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readdirSync, readFileSync, realpathSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { InvalidInputError } from "../../src/contract/errors.js";
import { openBlobStore, type BlobStore } from "../../src/workspace/blob-store.js";
import { GitObjects } from "../../src/workspace/git-objects.js";
import { blobDigest, CHUNK_SIZE, type ManifestFileEntry } from "../../src/workspace/manifest.js";
import { snapshotDirectory, type Snapshot } from "../../src/workspace/snapshot.js";
import { keepWorkingOnly, submittedSource } from "../../node/workspaces/snapshot-content.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

function git(cwd: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=Test", "-c", "user.email=test@example.invalid", "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", ...args], { cwd, encoding: "utf8" }).trim();
}

const made: Array<() => unknown> = [];
afterEach(async () => {
  for (const undo of made.splice(0).reverse()) await undo();
});

function dir(prefix: string): string {
  const d = tempDir(prefix);
  made.push(() => d.remove());
  return d.path;
}

async function store(quotaBytes?: number): Promise<BlobStore> {
  const s = await openBlobStore({ dir: dir("cc-kept-store-"), ...(quotaBytes !== undefined && { quotaBytes }) });
  made.push(() => s.close());
  return s;
}

function fileEntry(snap: Snapshot, path: string): ManifestFileEntry {
  const entry = snap.manifest.entries.find((e) => e.path === path);
  if (entry?.kind !== "file") throw new Error(`no file ${path}`);
  return entry;
}

/** `git cat-file --batch` processes running in `cwd`. */
function batchesIn(cwd: string): number {
  let n = 0;
  for (const pid of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, "utf8") === "git\0cat-file\0--batch\0" && realpathSync(`/proc/${pid}/cwd`) === realpathSync(cwd)) n++;
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return n;
}

function chunksOf(bytes: Uint8Array): string[] {
  const out: string[] = [];
  for (let at = 0; at < bytes.byteLength; at += CHUNK_SIZE) out.push(blobDigest(bytes.subarray(at, at + CHUNK_SIZE)));
  return out;
}

describe("GitObjects", () => {
  it("reads a changed file's committed content chunk by chunk, each checked, through one git process; a candidate holding other bytes, an option-like one, one git lacks, a tree and a longer one yield nothing", async () => {
    const root = dir("cc-git-objects-");
    git(root, "init", "-q");
    const first = randomBytes(2 * CHUNK_SIZE + 1234);
    writeFileSync(join(root, "big.bin"), first);
    git(root, "add", "-A");
    git(root, "commit", "-qm", "first");
    const second = Buffer.concat([first.subarray(0, CHUNK_SIZE), randomBytes(CHUNK_SIZE + 1234)]);
    writeFileSync(join(root, "big.bin"), second);
    git(root, "commit", "-qam", "second");
    writeFileSync(join(root, "big.bin"), "changed since");
    const entry: ManifestFileEntry = { path: "big.bin", kind: "file", executable: false, size: first.byteLength, chunks: chunksOf(first) };

    const taken: string[] = [];
    const take = async (digest: string, bytes: Uint8Array): Promise<void> => {
      expect(blobDigest(bytes)).toBe(digest);
      taken.push(digest);
    };
    const objects = new GitObjects(root);
    made.push(() => objects.close());
    // HEAD holds the second version, as long: its first chunk matches, its second does not, so it is dropped there (the rest read past) and HEAD~1 read whole.
    expect(await objects.read(entry, ["--help", "0".repeat(40), "HEAD^{tree}", "HEAD:./big.bin", "HEAD~1:./big.bin", "a\nb"], take)).toBe(true);
    expect(taken).toEqual([entry.chunks[0], ...entry.chunks]);

    taken.length = 0;
    expect(await objects.read(entry, ["HEAD:./big.bin", "--help", "no-such-rev:./big.bin"], take)).toBe(false);
    expect(taken).toEqual([entry.chunks[0]]);

    // The entry's content followed by more bytes is not its content; reads at once still come back in order.
    taken.length = 0;
    const shorter: ManifestFileEntry = { ...entry, size: CHUNK_SIZE, chunks: [entry.chunks[0]!] };
    const both = await Promise.all([objects.read(shorter, ["HEAD~1:./big.bin"], take), objects.read(entry, ["HEAD~1:./big.bin"], take)]);
    expect(both).toEqual([false, true]);
    expect(taken).toEqual(entry.chunks);
    // Every read above went through one process, which ends with close().
    expect(batchesIn(root)).toBe(1);
    objects.close();
    await eventually(() => batchesIn(root) === 0, 5000, "the batch to end");
  });
});

describe("GitObjects after a failed read", () => {
  it("asks the next candidate of a new process, not of the one it ended", async () => {
    const root = dir("cc-git-objects-retry-");
    git(root, "init", "-q");
    const bytes = randomBytes(CHUNK_SIZE + 10);
    writeFileSync(join(root, "f.bin"), bytes);
    git(root, "add", "-A");
    git(root, "commit", "-qm", "f");
    const entry: ManifestFileEntry = { path: "f.bin", kind: "file", executable: false, size: bytes.byteLength, chunks: chunksOf(bytes) };
    const objects = new GitObjects(root);
    made.push(() => objects.close());
    let calls = 0;
    const taken: string[] = [];
    // The first chunk handed on fails to be taken (a store refusing it, say): that candidate fails and its process is ended.
    const take = async (digest: string): Promise<void> => {
      if (calls++ === 0) throw new Error("refused");
      taken.push(digest);
    };
    expect(await objects.read(entry, [git(root, "rev-parse", "HEAD:f.bin"), "HEAD:./f.bin"], take)).toBe(true);
    expect(taken).toEqual(entry.chunks);
  });
});

describe("a submitted snapshot's content", () => {
  it("survives every change to the working tree, the index and HEAD: what git held is read back from its objects, the rest was kept at submit", async () => {
    const root = dir("cc-kept-src-");
    git(root, "init", "-q");
    const original: Record<string, Buffer> = {
      "clean.bin": randomBytes(CHUNK_SIZE + 77),
      "staged.txt": Buffer.from("staged v1\n"),
      "dirty.txt": Buffer.from("committed\n"),
      "sub/untracked.bin": randomBytes(3000),
    };
    mkdirSync(join(root, "sub"));
    writeFileSync(join(root, "clean.bin"), original["clean.bin"]!);
    writeFileSync(join(root, "staged.txt"), "committed\n");
    writeFileSync(join(root, "dirty.txt"), original["dirty.txt"]!);
    git(root, "add", "-A");
    git(root, "commit", "-qm", "base");
    writeFileSync(join(root, "staged.txt"), original["staged.txt"]!);
    git(root, "add", "staged.txt");
    original["dirty.txt"] = Buffer.from("edited, not staged\n");
    writeFileSync(join(root, "dirty.txt"), original["dirty.txt"]);
    writeFileSync(join(root, "sub/untracked.bin"), original["sub/untracked.bin"]!);

    const snap = await snapshotDirectory(root);
    expect([...snap.inGit.keys()].sort()).toEqual(["clean.bin", "staged.txt"]);
    const blobs = await store();
    const kept = await keepWorkingOnly(blobs, "submitted:t", snap.root, snap.manifest, snap.inGit, Number.POSITIVE_INFINITY);
    const workingOnly = [...fileEntry(snap, "dirty.txt").chunks, ...fileEntry(snap, "sub/untracked.bin").chunks];
    expect(new Set(kept)).toEqual(new Set(workingOnly));
    expect(blobs.pinnedBy("submitted:t")).toEqual(new Set(workingOnly));
    const source = submittedSource(blobs, "submitted:t", snap.root, snap.manifest, snap.pieces, { oids: snap.inGit, ...(snap.base && { base: snap.base.commit }) });

    // Everything changes: each file, what is staged (the staged blob is named by nothing any more), and HEAD.
    for (const path of Object.keys(original)) writeFileSync(join(root, path), `changed ${path}\n`);
    git(root, "add", "-A");
    git(root, "commit", "-qm", "after");
    writeFileSync(join(root, "clean.bin"), "changed again, not staged\n");

    // As the blob server reads: the store first, then the snapshot's source.
    for (const [path, bytes] of Object.entries(original)) {
      const entry = fileEntry(snap, path);
      const read = await Promise.all(entry.chunks.map(async (d) => (await blobs.read(d)) ?? (await source.read(d))));
      expect(Buffer.concat(read.map((b) => b ?? new Uint8Array())).equals(bytes), path).toBe(true);
    }
    // What was recovered from git is pinned for the submission.
    for (const d of fileEntry(snap, "clean.bin").chunks) expect(blobs.pinnedBy("submitted:t").has(d)).toBe(true);
  });

  it("outside a repository every file is kept, pinned first, within the budget and the quota; a file changed between the snapshot and its keeping is refused by name", async () => {
    const root = dir("cc-kept-plain-");
    const files = Array.from({ length: 4 }, (_, i) => [`f${i}.bin`, randomBytes(CHUNK_SIZE / 2)] as const);
    for (const [path, bytes] of files) writeFileSync(join(root, path), bytes);
    const snap = await snapshotDirectory(root);
    expect(snap.inGit.size).toBe(0);

    const blobs = await store();
    // Room for two and a half: the third does not fit, and nothing after it is taken.
    const kept = await keepWorkingOnly(blobs, "submitted:t", snap.root, snap.manifest, snap.inGit, 2.5 * (CHUNK_SIZE / 2));
    const [f0, f1, , f3] = files.map(([path]) => fileEntry(snap, path).chunks[0]!);
    expect(kept).toEqual([f0, f1]);
    expect(blobs.pinnedBy("submitted:t")).toEqual(new Set([f0, f1]));

    // A store whose quota its pins fill: what does not fit is not kept, and the submission is not refused for it.
    const small = await store(CHUNK_SIZE + CHUNK_SIZE / 4);
    expect(await keepWorkingOnly(small, "submitted:t", snap.root, snap.manifest, snap.inGit, Number.POSITIVE_INFINITY)).toEqual([f0, f1]);

    writeFileSync(join(root, "f3.bin"), "changed");
    const again = await store();
    const err = await keepWorkingOnly(again, "submitted:t", snap.root, snap.manifest, snap.inGit, Number.POSITIVE_INFINITY).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(InvalidInputError);
    expect(err).toMatchObject({ field: "f3.bin" });
    expect((err as Error).message).toMatch(/changed while it was snapshotted/);
    // The file restored, the next submission stores only what the store lacks.
    writeFileSync(join(root, "f3.bin"), files[3]![1]);
    expect(await keepWorkingOnly(again, "submitted:t", snap.root, snap.manifest, snap.inGit, Number.POSITIVE_INFINITY)).toEqual([f3]);
  });

  it("a read of a large file's first chunk answers once that chunk is back from git, not after the whole file", async () => {
    const root = dir("cc-kept-large-");
    git(root, "init", "-q");
    const bytes = randomBytes(3 * CHUNK_SIZE);
    writeFileSync(join(root, "large.bin"), bytes);
    git(root, "add", "-A");
    git(root, "commit", "-qm", "large");
    const snap = await snapshotDirectory(root);
    writeFileSync(join(root, "large.bin"), "changed");
    const chunks = fileEntry(snap, "large.bin").chunks;

    // The real store, with the last chunk's write held until the gate opens.
    const real = await store();
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const held: BlobStore = Object.create(real, {
      putVerified: { value: async (digest: string, b: Uint8Array) => (digest === chunks[2] ? gate.then(() => real.putVerified(digest, b)) : real.putVerified(digest, b)) },
    }) as BlobStore;
    const source = submittedSource(held, "submitted:t", snap.root, snap.manifest, snap.pieces, { oids: snap.inGit });

    const first = await source.read(chunks[0]!);
    expect(first && blobDigest(first)).toBe(chunks[0]);
    let lastRead = false;
    const last = source.read(chunks[2]!).then((b) => ((lastRead = true), b));
    await new Promise((r) => setTimeout(r, 100));
    expect(lastRead).toBe(false);
    open();
    const got = await last;
    expect(got && blobDigest(got)).toBe(chunks[2]);
  });
});
