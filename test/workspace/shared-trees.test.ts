import { createHash } from "node:crypto";
import { mkdirSync, readdirSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { CodeWorkspaces } from "../../node/workspaces/code-workspaces.js";
import { SharedTrees } from "../../node/workspaces/shared-trees.js";
import { SubmittedTrees } from "../../node/workspaces/submitted-trees.js";
import { WORKSPACE_KEY } from "../../src/workspace/task-spec.js";
import { openBlobStore, type BlobStore } from "../../src/workspace/blob-store.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const submittedIn = (dataDir: string, bad: string[] = []): Promise<SubmittedTrees> => SubmittedTrees.open(join(dataDir, "workspaces", "submitted"), (file) => bad.push(file));

/** A node's workspaces over the home `dataDir` as a process (re)started there finds them: nothing in memory. */
async function reopen(dataDir: string) {
  const store = await openBlobStore({ dir: join(dataDir, "blobs") });
  const shared = new SharedTrees();
  const sources: Array<{ read(d: string): Promise<Uint8Array | undefined> }> = [];
  const ws = new CodeWorkspaces({ selfId: "self", dataDir, store, shared, submitted: await submittedIn(dataDir), client: () => undefined, addSource: (s) => (sources.push(s), () => undefined) });
  return { store, shared, sources, ws };
}

/**
 * Workspaces over `store` whose store runs `hooks.missing` each time it has
 * told a submission which of the content to keep it lacks (between hashing a
 * file and reading its bytes again to keep them), and `hooks.storing` to
 * store each blob (with `put`).
 */
function workspacesOver(dataDir: string, store: BlobStore, submitted: SubmittedTrees, hooks: { missing?: () => void | Promise<void>; storing?: (digest: string, put: () => Promise<void>) => Promise<void> }): CodeWorkspaces {
  const hooked: BlobStore = Object.create(store) as BlobStore;
  hooked.missing = async (digests) => {
    const lacking = await store.missing(digests);
    await hooks.missing?.();
    return lacking;
  };
  hooked.putVerified = async (digest, bytes) => {
    const put = (): Promise<void> => store.putVerified(digest, bytes);
    await (hooks.storing === undefined ? put() : hooks.storing(digest, put));
  };
  return new CodeWorkspaces({ selfId: "self", dataDir, store: hooked, shared: new SharedTrees(), submitted, client: () => undefined, addSource: () => () => undefined });
}

/** A temporary home, removed after the test, with a directory `repo` in it holding `files` (name to content). */
function homeWithRepo(prefix: string, files: Record<string, string>): { home: string; repo: string } {
  const home = tempDir(prefix);
  cleanups.push(() => home.remove());
  const repo = join(home.path, "repo");
  mkdirSync(repo);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(repo, name), content);
  return { home: home.path, repo };
}

describe("trees served by a submitter", () => {
  it("are bounded: the least recently shared or granted tree stops being served, and its working tree source with it", async () => {
    const home = tempDir("cc-shared-");
    cleanups.push(() => home.remove());
    const store = await openBlobStore({ dir: join(home.path, "blobs") });
    cleanups.push(() => store.close());
    const shared = new SharedTrees(2);
    const served = new Set<string>();
    const ws = new CodeWorkspaces({
      selfId: "self",
      dataDir: home.path,
      store,
      shared,
      submitted: await submittedIn(home.path),
      client: () => undefined,
      addSource: () => {
        const name = `source${served.size}-${Math.random()}`;
        served.add(name);
        return () => served.delete(name);
      },
    });
    const repo = (name: string): string => {
      const dir = join(home.path, name);
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, "file.txt"), name);
      return dir;
    };
    const a = await ws.snapshot(repo("a"));
    const b = await ws.snapshot(repo("b"));
    // Granting `a` to a member makes it the most recently used: `b` goes first.
    expect(shared.grant(a.tree, "peer")).toBe(true);
    const c = await ws.snapshot(repo("c"));
    expect([shared.has(a.tree), shared.has(b.tree), shared.has(c.tree)]).toEqual([true, false, true]);
    expect(served.size).toBe(2);
    expect(shared.authorize("peer", a.tree)).toBe(true);
    ws.close();
    expect(served.size).toBe(0);
  });

  it("are served again after a restart, to the members granted them before, from the working tree; a file changed since reads as absent there, and its content kept at submit (no repository holds it) is in the store, pinned", async () => {
    const { home, repo } = homeWithRepo("cc-submitted-", { "kept.txt": "kept", "edited.txt": "before" });
    const open = () => reopen(home);
    const first = await open();
    const spec = await first.ws.snapshot(repo);
    const request = { description: "t", input: "", metadata: { [WORKSPACE_KEY]: spec } };
    expect(await first.ws.grantFor(request, "member-b")).toEqual(spec);
    // What a member already holds is not granted (nor recorded) twice.
    expect(await first.ws.grantFor(request, "member-b")).toBeUndefined();
    await first.store.close();

    // The process is gone: nothing in memory survives. Tree, pieces and grant come from the home.
    const second = await open();
    cleanups.push(() => second.store.close());
    expect(second.shared.has(spec.tree)).toBe(false);
    expect(await second.ws.restoreServed()).toBe(1);
    expect(second.shared.authorize("member-b", spec.tree)).toBe(true);
    expect(second.shared.authorize("member-c", spec.tree)).toBe(false);
    const digest = (text: string): string => createHash("sha256").update(text).digest("hex");
    expect(Buffer.from((await second.sources[0]!.read(digest("kept")))!).toString()).toBe("kept");
    writeFileSync(join(repo, "edited.txt"), "after!");
    expect(await second.sources[0]!.read(digest("before"))).toBeUndefined();
    expect(Buffer.from((await second.store.read(digest("before")))!).toString()).toBe("before");
    expect(second.store.pinnedBy(`submitted:${spec.tree}`).has(digest("before"))).toBe(true);

    // Past the retention the record goes, and the tree is no longer served.
    expect(await second.ws.restoreServed(Date.now() + 8 * 24 * 3600 * 1000)).toBe(0);
    const third = await submittedIn(home);
    expect(third.list()).toEqual([]);
  });

  it("a tree fetched for another member's task is served again after a restart, on that member's grants, while its record is young and the store holds it", async () => {
    const { home, repo } = homeWithRepo("cc-fetched-", { "a.txt": "a" });
    const open = () => reopen(home);
    // A tree in the store, as a fetch leaves one; its submission's own record removed, so only the fetched record speaks for it.
    const first = await open();
    const spec = await first.ws.snapshot(repo);
    await first.store.close();
    rmSync(join(home, "workspaces", "submitted"), { recursive: true, force: true });
    const fetched = join(home, "workspaces", "fetched");
    mkdirSync(fetched, { recursive: true });
    const absent = "e".repeat(64);
    const old = "f".repeat(64);
    writeFileSync(join(fetched, spec.tree), JSON.stringify({ tree: spec.tree, owner: "member-a" }));
    writeFileSync(join(fetched, absent), JSON.stringify({ tree: absent, owner: "member-a" }));
    writeFileSync(join(fetched, old), JSON.stringify({ tree: old, owner: "member-a" }));
    utimesSync(join(fetched, old), new Date(0), new Date(0));
    writeFileSync(join(fetched, "not-a-record"), "{ not json");

    const second = await open();
    cleanups.push(() => second.store.close());
    expect(await second.ws.restoreServed()).toBe(1);
    expect(second.shared.ownerOf(spec.tree)).toBe("member-a");
    // Granted to nobody yet: a member reads it on a grant member-a signs, not on its own say.
    expect(second.shared.authorize("member-b", spec.tree)).toBe(false);
    expect(readdirSync(fetched)).toEqual([spec.tree]);
    // Past the retention it goes too.
    expect(await second.ws.restoreServed(Date.now() + 8 * 24 * 3600 * 1000)).toBe(0);
    expect(readdirSync(fetched)).toEqual([]);
  });

  it("refuse a submission whose working-tree-only file changed while it was kept, leaving no record and no pins", async () => {
    const { home, repo } = homeWithRepo("cc-submitted-changed-", { "notes.txt": "as hashed" });
    const store = await openBlobStore({ dir: join(home, "blobs") });
    cleanups.push(() => store.close());
    const submitted = await submittedIn(home);
    // The file changes after the snapshot hashed it and before its bytes are read to be kept (the store is asked what it lacks in between).
    const ws = workspacesOver(home, store, submitted, { missing: () => writeFileSync(join(repo, "notes.txt"), "as edited") });
    await expect(ws.snapshot(repo)).rejects.toThrow(/notes\.txt.*changed while it was snapshotted|changed while it was snapshotted/);
    expect(store.holders()).toEqual([]);
    expect(submitted.list()).toEqual([]);
    expect(store.has(createHash("sha256").update("as hashed").digest("hex"))).toBe(false);
  });

  it("keep what one submission kept when a second submission of the same tree, made at the same time, finds the file changed", async () => {
    const { home, repo } = homeWithRepo("cc-submitted-twice-", { "notes.txt": "as hashed" });
    const store = await openBlobStore({ dir: join(home, "blobs") });
    cleanups.push(() => store.close());
    const submitted = await submittedIn(home);
    const kept = createHash("sha256").update("as hashed").digest("hex");
    const signal = (): { promise: Promise<void>; fire: () => void } => {
      let fire!: () => void;
      const promise = new Promise<void>((resolve) => (fire = resolve));
      return { promise, fire };
    };
    // Each wait ends after a second at most: where the submissions cannot interleave, the signal never comes.
    const until = (s: { promise: Promise<void> }): Promise<unknown> => Promise.race([s.promise, new Promise((resolve) => setTimeout(resolve, 1_000))]);
    const secondAsked = signal();
    const rewritten = signal();
    const secondEnded = signal();
    let asked = 0;
    // The interleaving that was possible: both find the file's content lacking; the first keeps it, the file
    // changes, the second reads it again and is refused, and only then does the first record its submission.
    const ws = workspacesOver(home, store, submitted, {
      missing: async () => {
        if (++asked !== 2) return;
        secondAsked.fire();
        await until(rewritten);
      },
      storing: async (digest, put) => {
        if (digest !== kept) return put();
        await until(secondAsked);
        writeFileSync(join(repo, "notes.txt"), "as edited");
        rewritten.fire();
        await put();
        await until(secondEnded);
      },
    });
    const [first] = await Promise.allSettled([ws.snapshot(repo), ws.snapshot(repo).finally(secondEnded.fire)]);
    expect(first.status).toBe("fulfilled");
    const spec = (first as PromiseFulfilledResult<{ tree: string }>).value;
    expect(submitted.has(spec.tree)).toBe(true);
    expect(store.pinnedBy(`submitted:${spec.tree}`).has(kept)).toBe(true);
  });

  it("drops a record that does not parse, saying which file, and keeps the others", async () => {
    const home = tempDir("cc-submitted-bad-");
    cleanups.push(() => home.remove());
    const dir = join(home.path, "workspaces", "submitted");
    mkdirSync(dir, { recursive: true });
    const tree = "a".repeat(64);
    writeFileSync(join(dir, `${tree}.json`), JSON.stringify({ version: 1, tree, dir: "/repo", at: 1, grantees: ["p"] }));
    writeFileSync(join(dir, `${"b".repeat(64)}.json`), JSON.stringify({ version: 1, tree: "b".repeat(64), dir: "relative/path", at: 1, grantees: [] }));
    writeFileSync(join(dir, `${"c".repeat(64)}.json`), JSON.stringify({ version: 1, tree: tree, dir: "/repo", at: 1, grantees: [] }));
    // A base commit is a git object id, never a revision git would interpret (`HEAD`, `--output=...`).
    writeFileSync(join(dir, `${"d".repeat(64)}.json`), JSON.stringify({ version: 1, tree: "d".repeat(64), dir: "/repo", at: 1, grantees: [], base: "--output=/tmp/x" }));
    const based = "e".repeat(64);
    writeFileSync(join(dir, `${based}.json`), JSON.stringify({ version: 1, tree: based, dir: "/repo", at: 2, grantees: [], base: "1".repeat(40) }));
    const bad: string[] = [];
    const submitted = await submittedIn(home.path, bad);
    expect(submitted.list().map((r) => r.tree)).toEqual([tree, based]);
    expect(submitted.get(based)?.base).toBe("1".repeat(40));
    expect(bad.map((f) => f.slice(dir.length + 1, dir.length + 2)).sort()).toEqual(["b", "c", "d"]);
  });
});
