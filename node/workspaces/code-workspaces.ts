import { lstat, mkdir, readdir, readFile, rm, stat, utimes, writeFile } from "node:fs/promises";
import { createHash } from "node:crypto";
import { dirname, join, relative, resolve } from "node:path";
import { glob } from "tinyglobby";
import { artifactMatcher } from "../../src/workspace/artifact-match.js";
import type { BlobClient, BlobSink } from "../../protocols/blobs/index.js";
import { CoderClawError, InvalidInputError } from "../../src/contract/errors.js";
import type { TaskSubmitRequest } from "../../src/contract/types.js";
import type { TaskWorkspaces } from "../../src/engine/execution-environment.js";
import type { BlobSource } from "../../src/workspace/blob-source.js";
import type { BlobStore } from "../../src/workspace/blob-store.js";
import { collectChanges, trackWorkspace, type ChangeTracking } from "../../src/workspace/git-changes.js";
import { agentCommits, initAgentRepository } from "../../src/workspace/agent-repository.js";
import { sandboxArgv, type SandboxSpec } from "../../src/agents/sandbox.js";
import { blobsOf, buildManifest, CHUNK_SIZE, DEFAULT_MANIFEST_LIMITS, isDigest, totalSize, type Manifest, type ManifestEntry, type ManifestLimits } from "../../src/workspace/manifest.js";
import { decodeManifestIndex, joinManifest, readPiecesWithin, splitManifest } from "../../src/workspace/manifest-pieces.js";
import { materializeTree, type MaterializedTree } from "../../src/workspace/materialize.js";
import type { CopySource } from "../../src/workspace/file-writer.js";
import { snapshotDirectory } from "../../src/workspace/snapshot.js";
import { statCacheFile } from "../../src/workspace/stat-cache.js";
import { SnapshotMemory } from "../../src/workspace/snapshot-memory.js";
import { RESULT_ARTIFACTS_DIR, RESULT_COMMITS_PATH, RESULT_PATCH_PATH, WORKSPACE_KEY, workspaceSpecOf, type WorkspaceResult, type WorkspaceSpec } from "../../src/workspace/task-spec.js";
import type { StatementSigner } from "../../identity/statement.js";
import type { ServiceAuditEntry } from "../services/mesh-service.js";
import { BlobArrivals } from "./blob-arrivals.js";
import { executorGrantOf, withExecutorGrant } from "./executor-grant.js";
import { KeyedTurns } from "../../src/util/keyed-turns.js";
import { fromHolders, holderMisbehaved, holderOrder, type HolderHints } from "./holder-fetch.js";
import { readResultFiles, type ResultFile, type ResultRequest } from "./result-files.js";
import { keepWorkingOnly, submittedSource } from "./snapshot-content.js";
import { signTreeGrant } from "./tree-grants.js";
import type { SharedTrees } from "./shared-trees.js";
import type { SubmittedTrees } from "./submitted-trees.js";

/** Dependencies of {@link CodeWorkspaces}. */
export interface CodeWorkspacesOptions {
  selfId: string;
  dataDir: string;
  store: BlobStore;
  /** Set once the node's libp2p runs; tasks that carry code from elsewhere fail until then. */
  client: () => BlobClient | undefined;
  shared: SharedTrees;
  /** This node's submissions' trees, served again after a restart. */
  submitted: SubmittedTrees;
  /** Serve a snapshot's blobs from its working tree, until the returned function is called. */
  addSource: (source: BlobSource) => () => void;
  /** Limits a tree received must keep. */
  limits?: ManifestLimits;
  /** Agents that may run tasks carrying code from other devices; absent: every agent. */
  acceptAgents?: readonly string[];
  /**
   * Bytes of a submission's snapshot that only its working tree holds kept in
   * the store at submit (snapshot-content.ts). Default a quarter of the
   * store's quota.
   */
  keepBytes?: number;
  /** Largest artifact brought back, bytes. Default 256 MiB. */
  maxArtifactBytes?: number;
  /** How long a task's result (patch and artifacts) stays pinned after it is stored, ms. Default 7 days. */
  resultRetentionMs?: number;
  /** Signs grants to this node's trees (its device key); without it none can be made. */
  signer?: StatementSigner;
  /** The mesh a grant is signed for. */
  meshId?: () => string | undefined;
  /** Members connected now: where else a tree may be fetched from. */
  connected?: () => string[];
  /** Records a holder that was cut off while this node fetched from it, and a result refused. */
  audit?: (entry: ServiceAuditEntry) => void;
}

/** Where {@link CodeWorkspaces.resultFiles} looks for a result it does not hold, and the grant it presents there. */
export interface ResultSources extends Omit<HolderHints, "heldBy"> {
  /** Signed by the task's submitter for this node: lets a member other than the submitter and the executor serve it. */
  grant?: Uint8Array;
}

/** Default of {@link CodeWorkspacesOptions.resultRetentionMs}. */
export const DEFAULT_RESULT_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** What a task's directory holds while it runs. */
interface Prepared {
  dir: string;
  tracking: ChangeTracking;
  /** Reads a blob of the tree the workspace was made from. */
  read: (digest: string) => Promise<Uint8Array>;
  spec: WorkspaceSpec;
  requester: string | undefined;
  /** For a task submitted with `commits`: the commit holding the snapshot in `<dir>/.git`. */
  base: string | undefined;
}

/** Holder names in the blob store: what a running task and a task's result keep from collection. */
const taskHolder = (taskId: string): string => `task:${taskId}`;
const resultHolder = (taskId: string): string => `result:${taskId}`;
/** Keeps a submission's tree and manifest pieces, which its working tree cannot give back after a restart, and the file chunks kept or recovered for it. */
const submittedHolder = (treeId: string): string => `submitted:${treeId}`;
/**
 * Default share of the store's quota one submission may keep of the content
 * only its working tree holds (see snapshot-content.ts); beyond it, the rest is
 * served from the working tree only, as long as its files keep it.
 */
const KEPT_SHARE_OF_QUOTA = 0.25;

/**
 * Tasks that carry code, on both ends. The submitter snapshots a directory and
 * shares its tree with the members its attempts go to; the executor fetches
 * what its store lacks, materialises the tree in the task's own directory,
 * tracks it with git kept outside that directory, and after the agent returns
 * stores what changed (a patch and the artifacts asked for) as a result tree
 * that the submitter fetches later.
 */
export class CodeWorkspaces implements TaskWorkspaces {
  readonly #o: CodeWorkspacesOptions;
  readonly #prepared = new Map<string, Prepared>();
  /** What stops serving each snapshot's working tree, by tree id. */
  readonly #sources = new Map<string, () => void>();
  /** What each snapshot leaves for the next one of the same directory. */
  readonly #snapshots = new SnapshotMemory();
  /** Submissions of each tree id keeping content and recording themselves, one at a time. */
  readonly #submitting = new KeyedTurns();

  constructor(options: CodeWorkspacesOptions) {
    this.#o = options;
  }

  /** This node's device id: the holder named in the results of tasks that ran here. */
  get selfId(): string {
    return this.#o.selfId;
  }

  /** Snapshot `dir` for a submission: its tree is shared (to nobody yet) and the spec goes into the signed request. */
  async snapshot(dir: string, artifacts?: readonly string[]): Promise<WorkspaceSpec> {
    const cacheFile = statCacheFile(join(this.#o.dataDir, "workspaces", "stat-cache"), dir);
    const snap = await snapshotDirectory(dir, { cacheFile, memory: this.#snapshots, ...(this.#o.limits && { limits: this.#o.limits }) });
    await this.#o.store.putTree(snap.treeId, snap.index);
    // On record before the request is signed: a task may wait for a member longer than this process lives.
    for (const piece of snap.pieces) await this.#o.store.putVerified(piece.digest, piece.bytes);
    const holder = submittedHolder(snap.treeId);
    // One submission of a tree at a time from here: the holder is the tree's, and a second one refused while the
    // first had kept content and not yet recorded it would drop the first one's pins with its own.
    await this.#submitting.run(snap.treeId, async () => {
      // Pinned before there is a record: a process killed meanwhile leaves pins of a holder without one, which a restart drops.
      await keepWorkingOnly(this.#o.store, holder, snap.root, snap.manifest, snap.inGit, this.#o.keepBytes ?? this.#o.store.quotaBytes * KEPT_SHARE_OF_QUOTA).catch(async (err: unknown) => {
        if (!this.#o.submitted.has(snap.treeId)) await this.#o.store.unpin(holder);
        throw err;
      });
      // The record before the pin: a process killed between them leaves a record that a restart pins again or forgets, never a pin nothing expires.
      await this.#o.submitted.add(snap.treeId, resolve(dir), Date.now(), snap.base?.commit);
      await this.#o.store.pin(holder, [snap.treeId, ...snap.pieces.map((p) => p.digest)]);
    });
    const source = submittedSource(this.#o.store, holder, snap.root, snap.manifest, snap.pieces, { oids: snap.inGit, ...(snap.base && { base: snap.base.commit }) });
    this.#serve(snap.treeId, snap.index, withPieces(blobsOf(snap.manifest), snap.pieces), source);
    return submissionSpec(snap.treeId, snap.manifest, artifacts);
  }

  /**
   * Make a tree whose manifest and blobs the store holds (uploaded over HTTP,
   * code-uploads.ts) a submission of this node, as {@link snapshot} makes a
   * directory's: every blob pinned for the submission, on record (without a
   * directory: the store holds it all, across restarts) and shared, to nobody
   * yet. Answers the spec that goes into the signed request.
   */
  async adoptUploaded(tree: string, manifest: Manifest, pieces: readonly string[], artifacts: readonly string[] | undefined, uploader: string): Promise<WorkspaceSpec> {
    const holder = submittedHolder(tree);
    const blobs = withPieces(blobsOf(manifest), pieces.map((digest) => ({ digest })));
    await this.#submitting.run(tree, async () => {
      // Pinned before there is a record, as a snapshot's kept content is: a process killed between leaves pins a restart drops.
      await this.#o.store.pin(holder, [tree, ...blobs]);
      await this.#o.submitted.add(tree, undefined, Date.now(), undefined, uploader);
    });
    const index = await this.#o.store.getTree(tree);
    if (index === undefined) throw new CoderClawError("NOT_FOUND", `tree ${tree} is no longer held here; upload it again`);
    // A tree this node serves already (the same content submitted from a directory) goes on being served as it is.
    if (!this.#o.shared.has(tree)) this.#shareHeld(tree, index, blobs);
    this.#o.shared.own(tree, this.#o.selfId);
    return submissionSpec(tree, manifest, artifacts);
  }

  /**
   * The blobs the store holds for submissions of uploaded trees (those `uploader` sent, when given), and their bytes,
   * each blob once (a tree sent again, changed a little, shares most).
   */
  uploadedHeld(uploader?: string): { bytes: number; blobs: number } {
    const digests = new Set<string>();
    for (const record of this.#o.submitted.list()) {
      if (record.dir === undefined && (uploader === undefined || record.uploader === uploader)) for (const digest of this.#o.store.pinnedBy(submittedHolder(record.tree))) digests.add(digest);
    }
    let bytes = 0;
    let blobs = 0;
    for (const digest of digests) {
      const at = this.#o.store.locate(digest);
      if (at === undefined) continue;
      bytes += at.size;
      blobs++;
    }
    return { bytes, blobs };
  }

  /**
   * Let `peer` read the tree a request carries, as its attempt goes there (on
   * record before it is sent, for a member that fetches after a restart of
   * this node); the spec when `peer` could not read it before.
   */
  async grantFor(request: Readonly<TaskSubmitRequest>, peer: string): Promise<WorkspaceSpec | undefined> {
    if (!this.carriesCode(request)) return undefined;
    const spec = workspaceSpecOf(request.metadata)!;
    if (!this.#o.shared.grant(spec.tree, peer)) return undefined;
    await this.#o.submitted.grant(spec.tree, peer);
    return spec;
  }

  /**
   * The request as it goes to `peer`: carrying a grant, signed here, that lets
   * `peer` fetch the tree from any member holding it (the submitter may be gone
   * by the time it fetches). The grant lasts as long as this node keeps the
   * submission, and is the same bytes for every send of one attempt.
   */
  executorRequest(request: Readonly<TaskSubmitRequest>, peer: string): Readonly<TaskSubmitRequest> {
    const spec = this.carriesCode(request) ? workspaceSpecOf(request.metadata) : undefined;
    const record = spec === undefined ? undefined : this.#o.submitted.get(spec.tree);
    if (spec === undefined || record === undefined || this.#o.signer === undefined) return request;
    return withExecutorGrant(request, this.grant(spec.tree, peer, record.at + (this.#o.resultRetentionMs ?? DEFAULT_RESULT_RETENTION_MS)));
  }

  /**
   * After a restart, serve again what this node served before: its
   * submissions' trees, from the directories they were snapshotted from, to
   * the members granted them; the results of tasks that ran here, to the
   * members that asked for them; and the trees it fetched for another
   * member's task (a tree it ran, a result it fetched), to the members that
   * member grants them to, while the store still holds them. Run once the
   * blob protocol runs. Answers how many trees are served. Submissions and
   * fetched trees older than the result retention go.
   */
  async restoreServed(now = Date.now()): Promise<number> {
    return (await this.#restoreSubmitted(now)) + (await this.#restoreResults()) + (await this.#restoreFetched(now));
  }

  async #restoreFetched(now: number): Promise<number> {
    const retention = this.#o.resultRetentionMs ?? DEFAULT_RESULT_RETENTION_MS;
    const dir = join(this.#o.dataDir, "workspaces", "fetched");
    let restored = 0;
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      const file = join(dir, name);
      const at = (await stat(file).catch(() => undefined))?.mtimeMs;
      const fetched = at === undefined || now - at >= retention ? undefined : parseFetchedTree(await readFile(file, "utf8").catch(() => ""));
      const index = fetched === undefined || fetched.tree !== name ? undefined : await this.#o.store.getTree(fetched.tree);
      const manifest = index === undefined ? undefined : await this.#manifest(name, undefined, DEFAULT_MANIFEST_LIMITS).catch(() => undefined);
      if (fetched === undefined || index === undefined || manifest === undefined) {
        // Too old, not a record, or the store let the tree go: nothing to serve.
        await rm(file, { force: true });
        continue;
      }
      this.#shareHeld(name, index, blobsOf(manifest));
      this.#o.shared.own(name, fetched.owner);
      restored++;
    }
    return restored;
  }

  async #restoreResults(): Promise<number> {
    let restored = 0;
    for (const holder of this.#o.store.holders()) {
      if (!holder.startsWith("result:")) continue;
      const served = parseServedResult(await readFile(this.#resultMarker(holder.slice("result:".length)), "utf8").catch(() => ""));
      const index = served === undefined ? undefined : await this.#o.store.getTree(served.tree);
      if (served === undefined || index === undefined) continue;
      const manifest = await this.#manifest(served.tree, undefined, DEFAULT_MANIFEST_LIMITS).catch(() => undefined);
      if (manifest === undefined) continue;
      this.#shareHeld(served.tree, index, blobsOf(manifest));
      this.#o.shared.grant(served.tree, served.requester);
      this.#o.shared.own(served.tree, served.requester);
      restored++;
    }
    return restored;
  }

  async #restoreSubmitted(now: number): Promise<number> {
    const retention = this.#o.resultRetentionMs ?? DEFAULT_RESULT_RETENTION_MS;
    let restored = 0;
    // Pins with no record: left by a process killed before records came first (nothing else would ever expire them).
    for (const holder of this.#o.store.holders()) {
      if (holder.startsWith("submitted:") && !this.#o.submitted.has(holder.slice("submitted:".length))) await this.#o.store.unpin(holder);
    }
    for (const record of this.#o.submitted.list()) {
      const index = now - record.at < retention ? await this.#o.store.getTree(record.tree) : undefined;
      if (index === undefined) {
        await this.#forgetSubmitted(record.tree);
        continue;
      }
      const digests = decodeManifestIndex(record.tree, index, DEFAULT_MANIFEST_LIMITS);
      const read = await Promise.all(digests.map((digest) => this.#o.store.read(digest)));
      if (read.includes(undefined)) {
        await this.#forgetSubmitted(record.tree);
        continue;
      }
      const pieces = digests.map((digest, i) => ({ digest, bytes: read[i]! }));
      const manifest = joinManifest(record.tree, index, read as Uint8Array[], DEFAULT_MANIFEST_LIMITS);
      // A record written just before its process was killed has no pin yet; what the submission kept or recovered is among the chunks held.
      const chunks = blobsOf(manifest);
      const lacking = new Set(await this.#o.store.missing(chunks));
      const holder = submittedHolder(record.tree);
      await this.#o.store.pin(holder, [record.tree, ...digests, ...[...chunks].filter((d) => !lacking.has(d))]);
      if (record.dir === undefined) {
        // Uploaded: the store holds every blob, or the tree is gone.
        if (lacking.size > 0) {
          await this.#forgetSubmitted(record.tree);
          continue;
        }
        this.#shareHeld(record.tree, index, withPieces(chunks, pieces));
        this.#o.shared.own(record.tree, this.#o.selfId);
      } else this.#serve(record.tree, index, withPieces(chunks, pieces), submittedSource(this.#o.store, holder, record.dir, manifest, pieces, { oids: new Map(), ...(record.base !== undefined && { base: record.base }) }));
      for (const peer of record.grantees) this.#o.shared.grant(record.tree, peer);
      restored++;
    }
    return restored;
  }

  /** Stop serving, and forget, this node's submissions' trees recorded before `before`. */
  async #expireSubmitted(before: number): Promise<void> {
    for (const listed of this.#o.submitted.list()) {
      if (listed.at >= before) break;
      await this.#submitting.run(listed.tree, async () => {
        // Read again in the tree's turn: the tree may have been submitted again while earlier ones were forgotten.
        if ((this.#o.submitted.get(listed.tree)?.at ?? before) >= before) return;
        this.#dropSources([listed.tree]);
        await this.#forgetSubmitted(listed.tree);
      });
    }
  }

  async #forgetSubmitted(tree: string): Promise<void> {
    await this.#o.store.unpin(submittedHolder(tree));
    await this.#o.submitted.remove(tree);
  }

  /** Share a tree whose blobs `source` reads (a working tree), serving that source while the tree is shared. */
  #serve(treeId: string, index: Uint8Array, blobs: Set<string>, source: BlobSource): void {
    if (!this.#o.shared.has(treeId)) this.#sources.set(treeId, this.#o.addSource(source));
    this.#dropSources(this.#o.shared.share(treeId, index, blobs, source));
    this.#o.shared.own(treeId, this.#o.selfId);
  }

  carriesCode(request: Readonly<TaskSubmitRequest>): boolean {
    return request.metadata?.[WORKSPACE_KEY] !== undefined;
  }

  runsProcesses(request: Readonly<TaskSubmitRequest>): boolean {
    return workspaceSpecOf(request.metadata)?.commits === true;
  }

  assertAccepted(request: Readonly<TaskSubmitRequest>, submittedBy: string | undefined): void {
    const spec = workspaceSpecOf(request.metadata)!;
    const limits = this.#o.limits ?? DEFAULT_MANIFEST_LIMITS;
    if (spec.bytes > limits.maxTreeBytes) throw new InvalidInputError(`a tree of ${spec.bytes} bytes is over this node's limit of ${limits.maxTreeBytes} (runtime.yaml code.maxTreeBytes)`, `metadata.${WORKSPACE_KEY}.bytes`);
    executorGrantOf(request.metadata);
    const agent = request.agentId ?? "echo";
    if (submittedBy !== undefined && this.#o.acceptAgents !== undefined && !this.#o.acceptAgents.includes(agent)) {
      throw new CoderClawError("PERMISSION_DENIED", `agent ${agent} may not receive code from other devices on this node (runtime.yaml code.agents: ${this.#o.acceptAgents.join(", ") || "none"})`, { field: "agentId" });
    }
  }

  async prepare(task: { id: string; request: Readonly<TaskSubmitRequest>; submittedBy?: string }, signal: AbortSignal): Promise<string> {
    const spec = workspaceSpecOf(task.request.metadata)!;
    const limits = this.#o.limits ?? DEFAULT_MANIFEST_LIMITS;
    const from = task.submittedBy;
    const carried = executorGrantOf(task.request.metadata);
    // The submitter serves its own grantees from its record: the grant goes to other holders only (a node older than grants refuses the field).
    const grantFor = (peer: string | undefined): Uint8Array | undefined => (peer === from ? undefined : carried);
    // With a grant, any member holding the tree may serve it (the submitter first when connected); without, the submitter alone.
    const holders = from === undefined ? [] : carried === undefined ? [from] : holderOrder({ owner: from }, this.#o.connected?.() ?? [], this.#o.selfId);
    const fromAny = <T>(what: string, attempt: (peer: string | undefined) => Promise<T>): Promise<T> =>
      holders.length === 0 ? attempt(undefined) : fromHolders(what, holders, attempt, (peer, error) => this.#holderFailed(peer, spec.tree, error), signal);
    // A tree held here before this task is not the submitter's to grant: naming a tree id proves nothing of its content.
    const heldBefore = this.#o.shared.has(spec.tree) || (await this.#o.store.getTree(spec.tree)) !== undefined;
    const manifest = await fromAny(`tree ${spec.tree}`, (peer) => this.#manifest(spec.tree, peer, limits, { signal, holder: taskHolder(task.id), ...fetchOptions(undefined, grantFor(peer)), vouched: true }));
    if (totalSize(manifest) !== spec.bytes || manifest.entries.length !== spec.files) {
      throw new InvalidInputError(`the tree holds ${manifest.entries.length} files of ${totalSize(manifest)} bytes, not the ${spec.files} files of ${spec.bytes} bytes the request was signed with`, `metadata.${WORKSPACE_KEY}`);
    }
    const blobs = blobsOf(manifest);
    // The store counts a pin at once and makes it durable meanwhile: the tree is fetched while thousands of pin keys are written, not after.
    const pinned = this.#o.store.pin(taskHolder(task.id), blobs);
    pinned.catch(() => undefined);
    const local = this.#o.shared.source(spec.tree);
    const dir = join(this.#o.dataDir, "workspaces", "tasks", task.id);
    const gitDir = join(this.#o.dataDir, "workspaces", "git", task.id);
    // A previous run of this task (before a restart) left its directory: it starts again from the tree.
    await Promise.all([rm(dir, { recursive: true, force: true }), rm(gitDir, { recursive: true, force: true })]);
    const fromStore = (digest: string): Uint8Array => {
      const bytes = this.#o.store.readSync(digest);
      if (bytes === undefined) throw new CoderClawError("NOT_FOUND", `blob ${digest} of tree ${spec.tree} is not held here`);
      return bytes;
    };
    const read = async (digest: string): Promise<Uint8Array> => (local === undefined ? undefined : await local.read(digest)) ?? fromStore(digest);
    const tree =
      local === undefined
        ? await this.#fetchInto(manifest, dir, spec.tree, (sink, stopped) => fromAny(`the blobs of tree ${spec.tree}`, (peer) => this.#fetchBlobs(peer, spec.tree, blobs, stopped, sink, grantFor(peer))), limits, signal)
        : await materializeTree(manifest, dir, read, { limits, readsVerified: true });
    await pinned;
    const tracking = await trackWorkspace(dir, gitDir, manifest, tree);
    const base = spec.commits === true ? await initAgentRepository(dir, spec.tree, signal) : undefined;
    // Another member the submitter grants it to may fetch the tree here while the store keeps its blobs.
    if (!heldBefore && from !== undefined) await this.#shareFetched(spec.tree, blobs, from);
    this.#prepared.set(task.id, { dir, tracking, read, spec, requester: from, base });
    return dir;
  }

  async collect(taskId: string, sandbox?: SandboxSpec): Promise<WorkspaceResult> {
    const prepared = this.#prepared.get(taskId);
    if (prepared === undefined) throw new CoderClawError("NOT_FOUND", `task ${taskId} has no workspace here`);
    const changes = await collectChanges(prepared.tracking, prepared.read);
    const files: Array<{ path: string; bytes: Uint8Array }> = [];
    if (changes.patch.byteLength > 0) files.push({ path: RESULT_PATCH_PATH, bytes: changes.patch });
    const commits = prepared.base === undefined ? undefined : await agentCommits(prepared.dir, prepared.base, (argv) => (sandbox === undefined ? argv : sandboxArgv(sandbox, argv, prepared.dir)));
    if (commits !== undefined && commits.series.byteLength > 0) files.push({ path: RESULT_COMMITS_PATH, bytes: commits.series });
    const artifacts: WorkspaceResult["artifacts"] = [];
    for (const path of await this.#artifactPaths(prepared)) {
      const bytes = await readFile(join(prepared.dir, path));
      files.push({ path: `${RESULT_ARTIFACTS_DIR}/${path}`, bytes });
      artifacts.push({ path, size: bytes.byteLength });
    }
    const tree = await this.#storeTree(taskId, files, prepared.requester);
    if (prepared.requester !== undefined) {
      this.#o.shared.grant(tree, prepared.requester);
      this.#o.shared.own(tree, prepared.requester);
    }
    return {
      tree,
      heldBy: this.#o.selfId,
      base: prepared.spec.tree,
      patchBytes: changes.patch.byteLength,
      changed: { added: changes.added, modified: changes.modified, deleted: changes.deleted },
      artifacts,
      ...(commits !== undefined && { commits: commits.count }),
    };
  }

  /**
   * Drop what tasks no longer running here still hold: pins are durable, so a
   * process killed between preparing a task's workspace and releasing it left
   * the task's blobs pinned (out of reach of the quota's eviction), its tree
   * (perhaps half-made) and its change-tracking repository behind. Run at
   * start, before any task is prepared; answers how many tasks' pins were
   * dropped.
   */
  async sweep(): Promise<number> {
    let swept = 0;
    for (const holder of this.#o.store.holders()) {
      if (!holder.startsWith("task:") || this.#prepared.has(holder.slice("task:".length))) continue;
      await this.#o.store.unpin(holder);
      swept++;
    }
    // A task's tree, one half-made (`<id>.partial-<random>`), and its change tracking.
    for (const kind of ["tasks", "git"]) {
      const parent = join(this.#o.dataDir, "workspaces", kind);
      const left = await readdir(parent).catch(() => [] as string[]);
      await Promise.all(left.filter((name) => !this.#prepared.has(name.replace(/\.partial-[0-9a-f]+$/, ""))).map((name) => rm(join(parent, name), { recursive: true, force: true })));
    }
    return swept;
  }

  /**
   * Unpin the results stored more than the retention ago (or before `now`
   * minus it), so the quota's eviction can reclaim them; answers how many were
   * released. A result's age is the time of the marker file written when it was
   * kept: pins carry no time, and a result pinned before markers existed gets
   * one now, so that it lives a full retention from the first expiry run.
   */
  async expireResults(now = Date.now()): Promise<number> {
    const retention = this.#o.resultRetentionMs ?? DEFAULT_RESULT_RETENTION_MS;
    await this.#expireSubmitted(now - retention);
    let released = 0;
    for (const holder of this.#o.store.holders()) {
      if (!holder.startsWith("result:")) continue;
      const taskId = holder.slice("result:".length);
      const kept = await stat(this.#resultMarker(taskId)).catch(() => undefined);
      if (kept === undefined) await this.#markResult(taskId, now);
      else if (now - kept.mtimeMs >= retention) {
        await this.releaseResult(taskId);
        released++;
      }
    }
    return released;
  }

  /**
   * `task clean`: release the results of `taskIds` (all results when none is
   * named), those kept at least `olderThanMs` ago only when that is given, then
   * remove every blob and tree nothing pins any more. Answers which tasks'
   * results went and what was freed. A task whose result went can no longer be
   * diffed or applied.
   */
  async clean(options: { taskIds?: readonly string[]; olderThanMs?: number } = {}): Promise<{ released: string[]; removed: number; freedBytes: number }> {
    const kept = this.#o.store.holders().filter((h) => h.startsWith("result:")).map((h) => h.slice("result:".length));
    const named = options.taskIds === undefined ? kept : kept.filter((id) => options.taskIds!.includes(id));
    const released: string[] = [];
    for (const taskId of named) {
      if (options.olderThanMs !== undefined) {
        const at = await stat(this.#resultMarker(taskId)).catch(() => undefined);
        if (at !== undefined && Date.now() - at.mtimeMs < options.olderThanMs) continue;
      }
      await this.releaseResult(taskId);
      released.push(taskId);
    }
    const { removed, freedBytes } = await this.#o.store.gc({ downToBytes: 0 });
    return { released, removed, freedBytes };
  }

  /** Unpin a task's result now; its blobs go when the quota needs room (or at `task clean`). */
  async releaseResult(taskId: string): Promise<void> {
    await this.#o.store.unpin(resultHolder(taskId));
    await rm(this.#resultMarker(taskId), { force: true });
  }

  #resultMarker(taskId: string): string {
    return join(this.#o.dataDir, "workspaces", "results", createHash("sha256").update(taskId).digest("hex").slice(0, 32));
  }

  /** The marker's time is the result's age; it names the tree and the member it is served to, for after a restart. */
  async #markResult(taskId: string, at: number, served?: ServedResult): Promise<void> {
    const file = this.#resultMarker(taskId);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, served === undefined ? taskId : JSON.stringify({ taskId, ...served }));
    await utimes(file, at / 1000, at / 1000);
  }

  async release(taskId: string): Promise<void> {
    const prepared = this.#prepared.get(taskId);
    this.#prepared.delete(taskId);
    await this.#o.store.unpin(taskHolder(taskId)).catch(() => undefined);
    if (prepared === undefined) return;
    await Promise.all([rm(prepared.dir, { recursive: true, force: true }), rm(prepared.tracking.gitDir, { recursive: true, force: true })]);
  }

  /**
   * The files of a task's result (its patch and artifacts), without their
   * bytes, read here or fetched from a member that holds them: the submitter
   * when connected, the members `from` names, the executor, then any other
   * connected member, each checked blob by blob (a holder sending other bytes
   * is cut off, audited, and the fetch goes on from the next). The manifest
   * comes first: a result holding what `request` did not ask for is refused
   * and audited (naming its executor) before any of its files' bytes are
   * fetched, and is served to no one. A result fetched here is served on to
   * the members its submitter (`from.owner`) grants it to. Its bytes are then
   * read blob by blob ({@link resultBlob}), so that a result of any size
   * travels in pieces.
   */
  async resultFiles(result: WorkspaceResult, request: ResultRequest, signal?: AbortSignal, from: ResultSources = {}): Promise<ResultFile[]> {
    // Not to the submitter, which reads its own record (and may be older than grants).
    const grantFor = (peer: string): Uint8Array | undefined => (peer === from.owner ? undefined : from.grant);
    // A holder that failed for the manifest is not asked for the files, and the one that gave it is asked first.
    const passedOver = new Set<string>();
    const failed = (peer: string, error: Error): void => {
      passedOver.add(peer);
      this.#holderFailed(peer, result.tree, error);
    };
    const what = `result ${result.tree}`;
    // Whole here: read once, its blobs checked with it. A result this node made and whose blobs went since (released, then
    // collected) is read again below, to be refused when listed with why, not at its first read.
    const whole = await this.#heldManifest(result.tree);
    const held = whole !== undefined || result.heldBy === this.#o.selfId;
    let holders = held ? [] : holderOrder({ ...from, heldBy: result.heldBy }, this.#o.connected?.() ?? [], this.#o.selfId);
    const manifest =
      whole ??
      (held
        ? await this.#manifest(result.tree, undefined, DEFAULT_MANIFEST_LIMITS)
        : await fromHolders(what, holders, (peer) => this.#manifest(result.tree, peer, DEFAULT_MANIFEST_LIMITS, fetchOptions(signal, grantFor(peer))), failed, signal));
    holders = holders.filter((peer) => !passedOver.has(peer));
    const read = readResultFiles(manifest, request);
    if ("refusal" in read) {
      this.#o.audit?.({ action: "task.result", peer: result.heldBy, resource: request.taskId, result: "denied", reason: read.refusal });
      throw new CoderClawError("PROTOCOL", read.refusal);
    }
    if (whole !== undefined) return read.files;
    const blobs = blobsOf(manifest);
    if (held) await this.#fetchBlobs(undefined, result.tree, blobs, signal);
    else {
      await fromHolders(what, holders, (peer) => this.#fetchBlobs(peer, result.tree, blobs, signal, this.#o.store, grantFor(peer)), failed, signal);
      if (from.owner !== undefined) await this.#shareFetched(result.tree, blobs, from.owner);
    }
    return read.files;
  }

  /** One blob of `result`'s files (`named`: their chunks, from {@link resultFiles}), read here; a digest they do not name is refused. */
  async resultBlob(result: WorkspaceResult, named: ReadonlySet<string>, digest: string): Promise<Uint8Array> {
    if (!named.has(digest)) throw new InvalidInputError(`blob ${digest} is not one of result ${result.tree}'s`, "digest");
    const bytes = await this.#o.store.read(digest);
    if (bytes === undefined) throw new CoderClawError("NOT_FOUND", `blob ${digest} of result ${result.tree} is not held here`);
    return bytes;
  }

  /**
   * A grant, signed by this node, that lets `grantee` read `tree` (one of this
   * node's submissions, or the result of one) from any member holding it until
   * `expires` (Unix ms).
   */
  grant(tree: string, grantee: string, expires: number): Uint8Array {
    if (this.#o.signer === undefined) throw new CoderClawError("UNAVAILABLE", "this node has no device key to sign grants with");
    return signTreeGrant(this.#o.signer, { mesh: this.#o.meshId?.() ?? "", tree, grantee, expires });
  }

  /** The tree's manifest when it and every blob it names are here already. */
  async #heldManifest(treeId: string): Promise<Manifest | undefined> {
    if (this.#o.shared.tree(treeId) === undefined && (await this.#o.store.getTree(treeId)) === undefined) return undefined;
    const manifest = await this.#manifest(treeId, undefined, DEFAULT_MANIFEST_LIMITS).catch(() => undefined);
    return manifest !== undefined && (await this.#o.store.missing(blobsOf(manifest))).length === 0 ? manifest : undefined;
  }

  /** Serve `treeId` (index `index`, blobs `blobs`) from the store, with its manifest's pieces, to whom it is granted to. */
  #shareHeld(treeId: string, index: Uint8Array, blobs: Set<string>): void {
    const pieces = decodeManifestIndex(treeId, index, DEFAULT_MANIFEST_LIMITS).map((digest) => ({ digest }));
    this.#dropSources(this.#o.shared.share(treeId, index, withPieces(blobs, pieces)));
  }

  /** Serve a tree fetched into the store on, to the members `owner` (its submitter) grants it to; on record for after a restart. */
  async #shareFetched(treeId: string, blobs: ReadonlySet<string>, owner: string): Promise<void> {
    const index = await this.#o.store.getTree(treeId);
    if (index === undefined) return;
    this.#shareHeld(treeId, index, new Set(blobs));
    if (!this.#o.shared.own(treeId, owner)) return;
    // The record's time is its age: a restart serves the tree on for as long as a result is kept.
    const file = join(this.#o.dataDir, "workspaces", "fetched", treeId);
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, JSON.stringify({ tree: treeId, owner } satisfies FetchedTree));
  }

  #holderFailed(peer: string, treeId: string, error: Error): void {
    if (holderMisbehaved(error)) this.#o.audit?.({ action: "blobs.fetch", peer, resource: treeId, result: "denied", reason: `cut off: ${error.message}` });
  }

  /** Stop serving snapshots' working trees. */
  close(): void {
    this.#dropSources([...this.#sources.keys()]);
  }

  #dropSources(treeIds: readonly string[]): void {
    for (const treeId of treeIds) {
      this.#sources.get(treeId)?.();
      this.#sources.delete(treeId);
    }
  }

  /**
   * The manifest of `treeId`: its index and the pieces this node lacks are
   * fetched from `from`, so a tree sent again costs the pieces that changed.
   * With a `holder`, the pieces are pinned for it first, so that a collection
   * between their fetch and their reading cannot take them.
   */
  async #manifest(treeId: string, from: string | undefined, limits: ManifestLimits, options: ManifestFetch = {}): Promise<Manifest> {
    const { signal, holder, grant } = options;
    const index = await this.#treeBytes(treeId, from, signal, grant, options.vouched === true);
    const digests = decodeManifestIndex(treeId, index, limits);
    if (holder !== undefined) await this.#o.store.pin(holder, digests);
    const local = this.#o.shared.source(treeId);
    // The index names its pieces, not their sizes: up to 100,000 of up to 1 MiB each. They are read, and fetched, only up to the manifest limit.
    const tooLarge = (): InvalidInputError => new InvalidInputError(`tree ${treeId}: its pieces come to more than the manifest limit of ${limits.maxManifestBytes} bytes`, "index.pieces");
    let held = 0;
    const readAll = async (): Promise<Array<Uint8Array | undefined>> => {
      const read = await readPiecesWithin(digests, async (d) => (local === undefined ? undefined : await local.read(d)) ?? (await this.#o.store.read(d)), limits.maxManifestBytes, tooLarge);
      held = read.bytes;
      return read.pieces;
    };
    let pieces = await readAll();
    if (pieces.includes(undefined)) {
      let fetched = held;
      const within = (bytes: number): void => {
        fetched += bytes;
        if (fetched > limits.maxManifestBytes) throw tooLarge();
      };
      const store = this.#o.store;
      const bounded: BlobSink = {
        missing: (d) => store.missing(d),
        partialOffset: (d) => store.partialOffset(d),
        putVerifiedAll: async (blobs) => {
          within(blobs.reduce((n, [, bytes]) => n + bytes.byteLength, 0));
          await store.putVerifiedAll(blobs);
        },
        appendPartial: async (d, offset, bytes, options) => {
          within(bytes.byteLength);
          return store.appendPartial(d, offset, bytes, options);
        },
      };
      await this.#fetchBlobs(from, treeId, new Set(digests), signal, bounded, grant);
      pieces = await readAll();
    }
    const lacking = pieces.indexOf(undefined);
    if (lacking >= 0) throw new CoderClawError("NOT_FOUND", `manifest piece ${digests[lacking]} of tree ${treeId} is not held here`);
    return joinManifest(treeId, index, pieces as Uint8Array[], limits);
  }

  async #treeBytes(treeId: string, from: string | undefined, signal?: AbortSignal, grant?: Uint8Array, vouched = false): Promise<Uint8Array> {
    const held = this.#o.shared.tree(treeId) ?? (await this.#o.store.getTree(treeId));
    if (held !== undefined && !(vouched && from !== undefined)) return held;
    if (from === undefined) throw new CoderClawError("NOT_FOUND", `tree ${treeId} is not held here`);
    const client = this.#o.client();
    if (client === undefined) throw new CoderClawError("UNAVAILABLE", "the blob protocol is not running yet");
    const bytes = await client.fetchTree(from, treeId, fetchOptions(signal, grant));
    if (held === undefined) await this.#o.store.putTree(treeId, bytes);
    return bytes;
  }

  /**
   * Fetches the blobs of `manifest` that the store lacks and materialises it
   * in `dir` at the same time: each file is written as soon as its blobs are
   * held, so the two overlap instead of one waiting for the other. Either
   * failing stops the other; the tree is then not made.
   */
  async #fetchInto(manifest: Manifest, dir: string, treeId: string, fetch: (sink: BlobSink, signal: AbortSignal) => Promise<void>, limits: ManifestLimits, signal: AbortSignal): Promise<MaterializedTree> {
    const arrivals = new BlobArrivals(this.#o.store, treeId);
    const stop = new AbortController();
    const stopped = AbortSignal.any([signal, stop.signal]);
    const fetching = fetch(arrivals.sink, stopped).then(
      () => arrivals.end(),
      (err: unknown) => {
        arrivals.fail(err instanceof Error ? err : new CoderClawError("UNAVAILABLE", String(err)));
        throw err;
      },
    );
    // A blob the store already holds (a tree sent before, most of one sent again) is read and checked by the writer's thread; one that just came is written from memory.
    const locate = (digest: string): CopySource | undefined => (arrivals.holds(digest) ? undefined : this.#o.store.locate(digest));
    const making = materializeTree(manifest, dir, (digest) => arrivals.read(digest), { limits, readsVerified: true, locate });
    making.catch((err: unknown) => stop.abort(err));
    // Both settle before a failure is reported: the partial tree is gone by then, and no fetch writes on.
    const [fetched, made] = await Promise.allSettled([fetching, making]);
    // A tree that could not be made stopped the fetch: its own error says why.
    if (made.status === "rejected" && stop.signal.aborted) throw made.reason;
    if (fetched.status === "rejected") throw fetched.reason;
    if (made.status === "rejected") throw made.reason;
    return made.value;
  }

  async #fetchBlobs(from: string | undefined, treeId: string, blobs: ReadonlySet<string>, signal?: AbortSignal, sink: BlobSink = this.#o.store, grant?: Uint8Array): Promise<void> {
    if ((await this.#o.store.missing(blobs)).length === 0) return;
    if (from === undefined) throw new CoderClawError("NOT_FOUND", `tree ${treeId}: its blobs are not held here`);
    const client = this.#o.client();
    if (client === undefined) throw new CoderClawError("UNAVAILABLE", "the blob protocol is not running yet");
    const got = await client.fetchBlobs(from, treeId, blobs, sink, fetchOptions(signal, grant));
    if (got.unavailable.length > 0) {
      throw new CoderClawError("NOT_FOUND", `${from} no longer holds ${got.unavailable.length} blob(s) of tree ${treeId} (a file changed since it was snapshotted?), e.g. ${got.unavailable[0]}`);
    }
  }

  /** Regular files the request's artifact patterns match, inside the workspace, within the size limit. */
  async #artifactPaths(prepared: Prepared): Promise<string[]> {
    const patterns = prepared.spec.artifacts ?? [];
    if (patterns.length === 0) return [];
    // Held to the rule the submitter takes names by, too: a file the glob finds that the rule would not name is left behind.
    const asked = artifactMatcher(patterns);
    const found = (await glob(patterns, { cwd: prepared.dir, onlyFiles: true, dot: true, followSymbolicLinks: false, expandDirectories: false })).filter((path) => asked(path));
    const max = this.#o.maxArtifactBytes ?? 256 * 1024 * 1024;
    const out: string[] = [];
    for (const path of found.sort()) {
      const rel = relative(prepared.dir, join(prepared.dir, path));
      if (rel.startsWith("..")) continue;
      const st = await lstat(join(prepared.dir, rel));
      if (!st.isFile()) continue;
      if (st.size > max) throw new CoderClawError("QUOTA", `artifact ${rel} is ${st.size} bytes, over the limit of ${max}`);
      out.push(rel);
    }
    return out;
  }

  /** Store files as a tree (blobs and manifest), kept for the task's result; returns its id. */
  async #storeTree(taskId: string, files: Array<{ path: string; bytes: Uint8Array }>, requester: string | undefined): Promise<string> {
    const entries: ManifestEntry[] = [];
    for (const f of files) {
      const chunks: string[] = [];
      for (let off = 0; off < f.bytes.byteLength; off += CHUNK_SIZE) {
        const part = f.bytes.subarray(off, Math.min(off + CHUNK_SIZE, f.bytes.byteLength));
        chunks.push(await this.#o.store.put(part));
      }
      entries.push({ path: f.path, kind: "file", executable: false, size: f.bytes.byteLength, chunks });
    }
    const manifest: Manifest = buildManifest(entries);
    const { treeId: tree, index, pieces } = splitManifest(manifest);
    for (const piece of pieces) await this.#o.store.putVerified(piece.digest, piece.bytes);
    await this.#o.store.putTree(tree, index);
    const blobs = withPieces(blobsOf(manifest), pieces);
    await this.#markResult(taskId, Date.now(), requester === undefined ? undefined : { tree, requester });
    await this.#o.store.pin(resultHolder(taskId), [tree, ...blobs]);
    this.#dropSources(this.#o.shared.share(tree, index, blobs));
    return tree;
  }
}

/** A result tree and the member it is served to, as its marker file holds them. */
interface ServedResult {
  tree: string;
  requester: string;
}

/** A tree fetched for another member's task, and that member: whose grants let others read it here. */
interface FetchedTree {
  tree: string;
  owner: string;
}

/** A fetched tree's record, or undefined for anything else. */
function parseFetchedTree(text: string): FetchedTree | undefined {
  const record = treeRecord(text);
  const owner = record?.owner;
  return record !== undefined && typeof owner === "string" && owner.length > 0 && owner.length <= 128 ? { tree: record.tree, owner } : undefined;
}

/** The fields of a record file's JSON object that names a tree (`tree`, a digest), or undefined for anything else. */
function treeRecord(text: string): (Record<string, unknown> & { tree: string }) | undefined {
  if (!text.startsWith("{") || text.length > 4096) return undefined;
  try {
    const record = JSON.parse(text) as Record<string, unknown>;
    return typeof record.tree === "string" && isDigest(record.tree) ? (record as Record<string, unknown> & { tree: string }) : undefined;
  } catch {
    return undefined;
  }
}

/** The marker's JSON; a marker written before results were served after restarts holds the task id alone. */
function parseServedResult(text: string): ServedResult | undefined {
  const record = treeRecord(text);
  const requester = record?.requester;
  return record !== undefined && typeof requester === "string" && requester.length <= 128 ? { tree: record.tree, requester } : undefined;
}

/** How {@link CodeWorkspaces} gets a manifest it may lack. */
interface ManifestFetch {
  signal?: AbortSignal;
  /** Pins the manifest's pieces for this holder before they are read. */
  holder?: string;
  grant?: Uint8Array;
  /**
   * The index is asked of `from` even when held here: a task from another
   * device runs on a tree only when its submitter (or a holder on its grant)
   * can serve it. A tree id alone replicates to every member, and this node's
   * store may hold the tree for someone else.
   */
  vouched?: boolean;
}

/** A fetch's options, without keys for what is absent. */
function fetchOptions(signal: AbortSignal | undefined, grant: Uint8Array | undefined): { signal?: AbortSignal; grant?: Uint8Array } {
  return { ...(signal !== undefined && { signal }), ...(grant !== undefined && { grant }) };
}

/** A tree's blobs and its manifest's pieces: what its server hands out under its id. */
/** The spec a submission's request carries for tree `tree`: what the executor checks the tree against, and the artifacts asked for. */
function submissionSpec(tree: string, manifest: Manifest, artifacts: readonly string[] | undefined): WorkspaceSpec {
  return { tree, bytes: totalSize(manifest), files: manifest.entries.length, ...(artifacts !== undefined && artifacts.length > 0 && { artifacts: [...artifacts] }) };
}

function withPieces(blobs: Set<string>, pieces: readonly { digest: string }[]): Set<string> {
  for (const piece of pieces) blobs.add(piece.digest);
  return blobs;
}
