import { createHash } from "node:crypto";
import { existsSync, lstatSync, readFileSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { FileWriter, MAX_COPY_BYTES, SOURCE_FAILED } from "../../src/workspace/file-writer.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function setup(): { dir: string; writer: FileWriter } {
  const dir = tempDir("cc-file-writer-");
  const writer = new FileWriter();
  cleanups.push(() => dir.remove(), () => writer.close());
  return { dir: dir.path, writer };
}

describe("FileWriter.create", () => {
  it("writes exactly the chunks given, even views into larger buffers, which stay the caller's", async () => {
    const { dir, writer } = setup();
    const big = Buffer.from("0123456789abcdefghij");
    const chunks = [big.subarray(2, 5), big.subarray(10, 12), new Uint8Array(0), big.subarray(19)];
    const stamp = await writer.create(join(dir, "f"), 0o644, chunks);
    expect(readFileSync(join(dir, "f"), "latin1")).toBe("234abj");
    // Handed over to the worker is a copy: the caller's buffer is neither detached nor changed.
    expect(big.byteLength).toBe(20);
    expect(big.toString("latin1")).toBe("0123456789abcdefghij");
    const st = statSync(join(dir, "f"));
    expect(stamp).toEqual({ size: 6, mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
  });

  it("writes a file larger than one job a chunk at a time, whole and in order, and stamps it as finished", async () => {
    const { dir, writer } = setup();
    const chunks = Array.from({ length: 11 }, (_, i) => Buffer.alloc(i === 10 ? 12_345 : 1024 * 1024, i + 1));
    const stamp = await writer.create(join(dir, "big"), 0o755, chunks);
    expect(readFileSync(join(dir, "big")).equals(Buffer.concat(chunks))).toBe(true);
    const st = statSync(join(dir, "big"));
    expect(stamp).toEqual({ size: 10 * 1024 * 1024 + 12_345, mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
    expect(st.mode & 0o777).toBe(0o755);
  });

  it("sets the mode asked for whatever the umask", async () => {
    const { dir, writer } = setup();
    const before = process.umask(0o077);
    try {
      const stamp = await writer.create(join(dir, "run.sh"), 0o755, [Buffer.from("#!/bin/sh\n")]);
      expect(stamp.mode & 0o777).toBe(0o755);
      expect(statSync(join(dir, "run.sh")).mode & 0o777).toBe(0o755);
    } finally {
      process.umask(before);
    }
  });

  it("refuses a path that exists, or is a link, writing nothing through it", async () => {
    const { dir, writer } = setup();
    writeFileSync(join(dir, "there"), "kept");
    writeFileSync(join(dir, "target"), "kept");
    symlinkSync(join(dir, "target"), join(dir, "link"));
    await expect(writer.create(join(dir, "there"), 0o644, [Buffer.from("x")])).rejects.toMatchObject({ code: "EEXIST" });
    await expect(writer.create(join(dir, "link"), 0o644, [Buffer.from("x")])).rejects.toMatchObject({ code: "EEXIST" });
    await expect(writer.create(join(dir, "missing", "f"), 0o644, [Buffer.from("x")])).rejects.toMatchObject({ code: "ENOENT" });
    expect(readFileSync(join(dir, "there"), "utf8")).toBe("kept");
    expect(readFileSync(join(dir, "target"), "utf8")).toBe("kept");
    expect(lstatSync(join(dir, "link")).isSymbolicLink()).toBe(true);
  });
});

describe("FileWriter with two threads", () => {
  it("writes every file asked for, in bursts and one at a time, each whole; a job that fails fails alone", async () => {
    const dir = tempDir("cc-file-writer-2-");
    const writer = new FileWriter({ threads: 2 });
    cleanups.push(() => dir.remove(), () => writer.close());
    const bytesOf = (i: number): Buffer => Buffer.alloc(1 + ((i * 7919) % 70_000), i % 251);
    writeFileSync(join(dir.path, "f17"), "there already");
    // A burst larger than a batch, then files one at a time as blobs would come, then another burst.
    const burst = (from: number, n: number) => Array.from({ length: n }, (_, k) => writer.create(join(dir.path, `f${from + k}`), 0o644, [bytesOf(from + k)]).then(() => undefined, (e: unknown) => e));
    const first = burst(0, 300);
    const single: unknown[] = [];
    for (let i = 300; i < 340; i++) single.push(await writer.create(join(dir.path, `f${i}`), 0o644, [bytesOf(i)]).then(() => undefined, (e: unknown) => e));
    const last = burst(340, 260);
    const outcomes = [...(await Promise.all(first)), ...single, ...(await Promise.all(last))];
    expect((outcomes[17] as NodeJS.ErrnoException).code).toBe("EEXIST");
    expect(outcomes.filter((o) => o !== undefined)).toHaveLength(1);
    expect(readFileSync(join(dir.path, "f17"), "utf8")).toBe("there already");
    for (let i = 0; i < 600; i++) if (i !== 17) expect(readFileSync(join(dir.path, `f${i}`)).equals(bytesOf(i)), `f${i}`).toBe(true);
  });
});

describe("FileWriter.copy", () => {
  const sha = (b: Uint8Array): string => createHash("sha256").update(b).digest("hex");

  it("creates a file from parts of other files, each checked against its digest on the worker", async () => {
    const { dir, writer } = setup();
    const pack = Buffer.from("....hello, ....world!");
    writeFileSync(join(dir, "pack"), pack);
    const sources = [
      { file: join(dir, "pack"), offset: 4, size: 6, digest: sha(pack.subarray(4, 10)) },
      { file: join(dir, "pack"), offset: 15, size: 6, digest: sha(pack.subarray(15, 21)) },
    ];
    const stamp = await writer.copy(join(dir, "f"), 0o755, sources);
    expect(readFileSync(join(dir, "f"), "latin1")).toBe("hello,world!");
    const st = statSync(join(dir, "f"));
    expect(st.mode & 0o777).toBe(0o755);
    expect(stamp).toEqual({ size: 12, mode: st.mode, ino: st.ino, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs });
  });

  it("creates nothing when a source is gone, ends early or holds other bytes than its digest, and says so by its code", async () => {
    const { dir, writer } = setup();
    writeFileSync(join(dir, "pack"), "0123456789");
    const good = { file: join(dir, "pack"), offset: 0, size: 4, digest: sha(Buffer.from("0123")) };
    const cases = [
      { name: "gone", source: { ...good, file: join(dir, "missing") } },
      { name: "ends early", source: { ...good, offset: 8 } },
      { name: "other bytes", source: { ...good, offset: 1 } },
    ];
    for (const { name, source } of cases) {
      const err = await writer.copy(join(dir, name), 0o644, [good, source]).catch((e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code, name).toBe(SOURCE_FAILED);
      expect(existsSync(join(dir, name)), name).toBe(false);
    }
    // A target that exists is refused as any create is, with the file system's own code.
    writeFileSync(join(dir, "there"), "x");
    const exists = await writer.copy(join(dir, "there"), 0o644, [good]).catch((e: unknown) => e);
    expect((exists as NodeJS.ErrnoException).code).toBe("EEXIST");
    expect(readFileSync(join(dir, "there"), "utf8")).toBe("x");
    await expect(writer.copy(join(dir, "huge"), 0o644, [{ ...good, size: MAX_COPY_BYTES + 1 }])).rejects.toThrow(RangeError);
  });
});
