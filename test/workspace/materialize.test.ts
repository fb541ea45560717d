import { closeSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import { openBlobStore } from "../../src/workspace/blob-store.js";
import { materializeTree } from "../../src/workspace/materialize.js";
import { blobDigest, buildManifest, CHUNK_SIZE, type Manifest } from "../../src/workspace/manifest.js";
import { tempDir } from "../helpers/temp-dir.js";
import { HOSTILE_CASES, limitsOf } from "./hostile-manifests.js";

/** Every path under `dir`, directories marked with a trailing slash. */
function listAll(dir: string, prefix = ""): string[] {
  return readdirSync(join(dir, prefix), { withFileTypes: true }).flatMap((d) => {
    const path = prefix === "" ? d.name : `${prefix}/${d.name}`;
    return d.isDirectory() ? [`${path}/`, ...listAll(dir, path)] : [path];
  });
}

function blobsFor(contents: Uint8Array[]): Map<string, Uint8Array> {
  const blobs = new Map<string, Uint8Array>();
  for (const bytes of contents) {
    for (let at = 0; at < bytes.length; at += CHUNK_SIZE) {
      const chunk = bytes.subarray(at, at + CHUNK_SIZE);
      blobs.set(blobDigest(chunk), chunk);
    }
  }
  return blobs;
}

function fileEntry(path: string, bytes: Uint8Array, executable = false) {
  const chunks: string[] = [];
  for (let at = 0; at < bytes.length; at += CHUNK_SIZE) chunks.push(blobDigest(bytes.subarray(at, at + CHUNK_SIZE)));
  return { path, kind: "file" as const, executable, size: bytes.length, chunks };
}

describe("materializeTree", () => {
  // base/canary is what an escape would hit; base/work/tree is the target.
  let base: { path: string; remove: () => void };
  let canary: string;
  let target: string;
  beforeEach(() => {
    base = tempDir("cc-materialize-");
    canary = join(base.path, "canary");
    mkdirSync(canary);
    mkdirSync(join(base.path, "work"));
    target = join(base.path, "work", "tree");
  });
  afterEach(() => base.remove());

  it("writes files, modes, empty files, nested directories and links exactly", async () => {
    const big = new Uint8Array(2 * CHUNK_SIZE + 17).map((_, i) => (i * 7) % 251);
    const script = new TextEncoder().encode("#!/bin/sh\necho hi\n");
    const text = new TextEncoder().encode("hello\n");
    const manifest = buildManifest([
      fileEntry("bin/run.sh", script, true),
      fileEntry("data/big.bin", big),
      fileEntry("data/empty", new Uint8Array()),
      fileEntry("a.txt", text),
      { path: "link-to-data", kind: "symlink", target: "data" },
      { path: "data/up", kind: "symlink", target: "../a.txt" },
    ]);
    const blobs = blobsFor([big, script, text]);
    await materializeTree(manifest, target, async (d) => blobs.get(d)!);
    expect(listAll(target).sort()).toEqual(["a.txt", "bin/", "bin/run.sh", "data/", "data/big.bin", "data/empty", "data/up", "link-to-data"]);
    // A deep equality of megabytes is slow in vitest; compare the bytes directly.
    expect(readFileSync(join(target, "data/big.bin")).equals(big)).toBe(true);
    expect(readFileSync(join(target, "data/up"), "utf8")).toBe("hello\n");
    expect(readlinkSync(join(target, "link-to-data"))).toBe("data");
    expect(lstatSync(join(target, "bin/run.sh")).mode & 0o777).toBe(0o755);
    expect(lstatSync(join(target, "a.txt")).mode & 0o777).toBe(0o644);
    expect(lstatSync(join(target, "data/empty")).size).toBe(0);
    expect(listAll(join(base.path, "work"))).toEqual(["tree/", ...listAll(target).map((p) => `tree/${p}`)]);
  });

  it("writes a file whose blobs came first without waiting for the files before it", async () => {
    // Blobs arrive by transfer, not in manifest order: here the first ten files' blobs come only once every file's were asked for.
    const contents = Array.from({ length: 40 }, (_, i) => new TextEncoder().encode(`file ${i}\n`));
    const manifest = buildManifest(contents.map((bytes, i) => fileEntry(`f${String(i).padStart(2, "0")}.txt`, bytes)));
    const blobs = blobsFor(contents);
    const late = new Set(contents.slice(0, 10).map((bytes) => blobDigest(bytes)));
    const asked = new Set<string>();
    let allAsked!: () => void;
    const everyFileAsked = new Promise<void>((resolve) => (allAsked = resolve));
    await materializeTree(manifest, target, (d) => {
      asked.add(d);
      if (asked.size === contents.length) allAsked();
      return late.has(d) ? everyFileAsked.then(() => blobs.get(d)!) : blobs.get(d)!;
    });
    expect(readdirSync(target).length).toBe(40);
    expect(readFileSync(join(target, "f00.txt"), "utf8")).toBe("file 0\n");
  });

  it("has files whose blobs a store holds read, checked and written off the event loop, and reads a blob whose bytes there went bad the usual way", async () => {
    const dir = tempDir("cc-materialize-store-");
    const store = await openBlobStore({ dir: dir.path, fsync: false });
    try {
      const contents = Array.from({ length: 30 }, (_, i) => new TextEncoder().encode(`file ${i} `.repeat(i + 1)));
      const big = new Uint8Array(CHUNK_SIZE + 100).map((_, i) => (i * 13) % 251);
      const manifest = buildManifest([...contents.map((bytes, i) => fileEntry(`d/f${String(i).padStart(2, "0")}.txt`, bytes, i === 3)), fileEntry("big.bin", big)]);
      const blobs = blobsFor([...contents, big]);
      for (const bytes of blobs.values()) await store.put(bytes);
      const read: string[] = [];
      const readBlob = (d: string): Uint8Array => {
        read.push(d);
        return blobs.get(d)!;
      };
      const locate = (d: string) => store.locate(d);
      const first = await materializeTree(manifest, target, readBlob, { locate });
      expect(read).toEqual([]);
      for (const [i, bytes] of contents.entries()) expect(readFileSync(join(target, `d/f${String(i).padStart(2, "0")}.txt`)).equals(bytes)).toBe(true);
      expect(readFileSync(join(target, "big.bin")).equals(big)).toBe(true);
      expect(lstatSync(join(target, "d/f03.txt")).mode & 0o777).toBe(0o755);
      expect(first.stamps.size).toBe(31);

      // The bytes of one packed blob go bad on disk: that file is read through readBlob, every other one as before.
      const bad = blobDigest(contents[7]!);
      const at = store.locate(bad)!;
      const fd = openSync(at.file, "r+");
      writeSync(fd, Buffer.from("X"), 0, 1, at.offset);
      closeSync(fd);
      const again = join(base.path, "work", "again");
      await materializeTree(manifest, again, readBlob, { locate });
      expect(read).toEqual([bad]);
      expect(readFileSync(join(again, "d/f07.txt")).equals(contents[7]!)).toBe(true);
      expect(readdirSync(join(again, "d")).length).toBe(30);
    } finally {
      await store.close();
      dir.remove();
    }
  });

  it("gives files the manifest's modes whatever the process umask", async () => {
    const script = new TextEncoder().encode("#!/bin/sh\n");
    const manifest = buildManifest([fileEntry("run.sh", script, true), fileEntry("plain.txt", script)]);
    const blobs = blobsFor([script]);
    const before = process.umask(0o077);
    try {
      const { stamps } = await materializeTree(manifest, target, (d) => blobs.get(d)!);
      expect(lstatSync(join(target, "run.sh")).mode & 0o777).toBe(0o755);
      expect(lstatSync(join(target, "plain.txt")).mode & 0o777).toBe(0o644);
      // The stamps describe the files as they were left, mode included.
      expect(stamps.get("run.sh")!.mode & 0o777).toBe(0o755);
    } finally {
      process.umask(before);
    }
  });

  it("only creates a new directory", async () => {
    mkdirSync(target);
    writeFileSync(join(target, "keep"), "mine");
    await expect(materializeTree(buildManifest([]), target, () => Promise.reject(new Error("unused")))).rejects.toThrow(/exists already/);
    expect(listAll(target)).toEqual(["keep"]);
  });

  describe("refuses hostile manifests, writing nothing anywhere", () => {
    it.each(HOSTILE_CASES)("$name", async (hostile) => {
      const readBlob = (): Promise<Uint8Array> => Promise.resolve(new Uint8Array([1]));
      const manifest = { version: 1, entries: hostile.entries } as unknown as Manifest;
      const refused = await materializeTree(manifest, target, readBlob, { limits: limitsOf(hostile) }).catch((err: unknown) => err);
      expect(refused).toBeInstanceOf(InvalidInputError);
      expect((refused as Error).message).toMatch(hostile.refusal);
      expect(listAll(base.path)).toEqual(["canary/", "work/"]);
      expect(() => lstatSync("/tmp/canary-abs")).toThrow(/ENOENT/);
    });
  });

  it("refuses a chunk that does not match its digest, naming the entry, and leaves nothing", async () => {
    const good = new TextEncoder().encode("good");
    const manifest = buildManifest([fileEntry("a.txt", good), fileEntry("b/c.txt", good)]);
    const refused = await materializeTree(manifest, target, async () => new TextEncoder().encode("evil")).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(InvalidInputError);
    expect((refused as Error).message).toMatch(/^entries\[\d\]\.chunks\[0\]: the bytes given for [0-9a-f]{64} do not match it \(entry "(a\.txt|b\/c\.txt)"\)/);
    expect(listAll(base.path)).toEqual(["canary/", "work/"]);
  });

  it("names the entry whose blob could not be read, and leaves nothing", async () => {
    const bytes = new TextEncoder().encode("x");
    const manifest = buildManifest([fileEntry("a.txt", bytes), fileEntry("z/missing.txt", new TextEncoder().encode("y"))]);
    const blobs = blobsFor([bytes]);
    const refused = await materializeTree(manifest, target, async (d) => {
      const blob = blobs.get(d);
      if (blob === undefined) throw new Error(`no blob ${d}`);
      return blob;
    }).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(CoderClawError);
    expect((refused as Error).message).toMatch(/^entries\[1\] "z\/missing\.txt": could not be materialised: no blob /);
    expect(listAll(base.path)).toEqual(["canary/", "work/"]);
  });
});
