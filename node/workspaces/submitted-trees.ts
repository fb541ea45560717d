import { mkdir, readdir, readFile, rm, stat } from "node:fs/promises";
import { isAbsolute, join } from "node:path";
import { z } from "zod";
import { writeFileAtomic } from "../../identity/index.js";

/** A record file is refused beyond this, before it is parsed. */
const MAX_RECORD_BYTES = 256 * 1024;
/** Members one tree is granted to at most: far more than attempts a task makes. */
const MAX_GRANTEES = 256;

const TREE_ID = /^[0-9a-f]{64}$/;

const recordSchema = z.strictObject({
  version: z.literal(1),
  tree: z.string().regex(TREE_ID),
  /** Absent for a tree uploaded over HTTP: the store holds all of it, and there is no working tree to read. */
  dir: z.string().min(1).max(4096).refine(isAbsolute, "must be an absolute path").optional(),
  at: z.number().int().nonnegative(),
  grantees: z.array(z.string().min(1).max(128)).max(MAX_GRANTEES),
  /** The commit the snapshot's repository sat on: git holds what its files were then. */
  base: z.string().regex(/^[0-9a-f]{40}(?:[0-9a-f]{24})?$/).optional(),
  /** Who uploaded the tree over HTTP (a hash of its session): what it keeps submitted counts against its own limit. */
  uploader: z.string().regex(/^[0-9a-f]{32}$/).optional(),
});

/** What a node needs to serve one of its submissions' trees again after a restart. */
export type SubmittedTree = Omit<z.infer<typeof recordSchema>, "version">;

/**
 * The trees of this node's submissions, one small file each in the home: the
 * directory a tree was snapshotted from (none for a tree uploaded over HTTP,
 * which the store holds whole) and the members granted it. A task
 * that waits for a capable member, or sits queued on one that has not fetched
 * its code yet, outlives a restart of its submitter (its state is durable), so
 * the tree it names must too: after a restart the node serves it again from
 * the same working tree, each blob checked against its digest; a file
 * changed since is read back from git (its index, HEAD, or the `base` commit
 * recorded here) or from what was kept at submit (snapshot-content.ts), and
 * otherwise answers "no longer held", never other bytes.
 */
export class SubmittedTrees {
  readonly #dir: string;
  readonly #records = new Map<string, SubmittedTree>();
  /** Writes one after another: two renames of one record in flight could land in either order. */
  #writes: Promise<void> = Promise.resolve();

  private constructor(dir: string) {
    this.#dir = dir;
  }

  /**
   * Open the records in `dir`. A record that cannot be read or parsed is
   * removed and reported through `onBad`: its tree is no longer served, and the
   * task that needed it fails saying its blobs are not held.
   */
  static async open(dir: string, onBad: (file: string, error: Error) => void): Promise<SubmittedTrees> {
    const trees = new SubmittedTrees(dir);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    for (const name of await readdir(dir)) {
      const file = join(dir, name);
      // A write the process did not finish renaming.
      if (!name.endsWith(".json")) {
        await rm(file, { force: true });
        continue;
      }
      try {
        const size = (await stat(file)).size;
        if (size > MAX_RECORD_BYTES) throw new Error(`over ${MAX_RECORD_BYTES} bytes`);
        const { version: _version, ...record } = recordSchema.parse(JSON.parse(await readFile(file, "utf8")));
        if (`${record.tree}.json` !== name) throw new Error(`names tree ${record.tree}`);
        trees.#records.set(record.tree, record);
      } catch (error) {
        onBad(file, error instanceof z.ZodError ? new Error(z.prettifyError(error)) : (error as Error));
        await rm(file, { force: true });
      }
    }
    return trees;
  }

  /** Every record, oldest first. */
  list(): SubmittedTree[] {
    return [...this.#records.values()].sort((a, b) => a.at - b.at);
  }

  has(tree: string): boolean {
    return this.#records.has(tree);
  }

  get(tree: string): SubmittedTree | undefined {
    return this.#records.get(tree);
  }

  /**
   * Record (durably) that `tree` was snapshotted from `dir` now, on commit
   * `base` if in a repository (`dir` undefined: uploaded by `uploader`, the
   * store holds it all); grants already recorded are kept, and so is the
   * directory of a record that had one.
   */
  async add(tree: string, dir: string | undefined, at = Date.now(), base?: string, uploader?: string): Promise<void> {
    const before = this.#records.get(tree);
    // An upload of a tree also submitted from a directory: that directory still serves what the store let go.
    const kept = dir === undefined ? before : undefined;
    const from = dir ?? kept?.dir;
    const on = base ?? kept?.base;
    await this.#write({ tree, ...(from !== undefined && { dir: from }), at, grantees: before?.grantees ?? [], ...(on !== undefined && { base: on }), ...(uploader !== undefined && { uploader }) });
  }

  /** Record (durably) that `peer` may read `tree`; nothing when `tree` is not a submission's or `peer` had it. */
  async grant(tree: string, peer: string): Promise<void> {
    const record = this.#records.get(tree);
    if (record === undefined || record.grantees.includes(peer)) return;
    await this.#write({ ...record, grantees: [...record.grantees, peer].slice(-MAX_GRANTEES) });
  }

  async remove(tree: string): Promise<void> {
    this.#records.delete(tree);
    const removal = this.#writes.then(() => rm(this.#file(tree), { force: true }));
    this.#writes = removal.catch(() => undefined);
    await removal;
  }

  async #write(record: SubmittedTree): Promise<void> {
    this.#records.set(record.tree, record);
    const write = this.#writes.then(() => {
      // The newest state when this write's turn comes: a later change may have been queued behind it.
      const now = this.#records.get(record.tree);
      return now === undefined ? undefined : writeFileAtomic(this.#file(record.tree), `${JSON.stringify({ version: 1, ...now })}\n`, { mode: 0o600 });
    });
    this.#writes = write.catch(() => undefined);
    await write;
  }

  #file(tree: string): string {
    return join(this.#dir, `${tree}.json`);
  }
}
