import type { SignedStatement } from "../../identity/index.js";
import { asPublication, type PublicationBody, type YankBody } from "../../src/registry/publication-statement.js";
import { compareVersions, type VersionRange } from "../../src/registry/version-range.js";
import type { AuditBody } from "../../src/security/index.js";
import { statementsAdded, type ApprovalStatementDeps } from "../approvals/approval-deps.js";

/** A publication this node takes: its statement's id and body. */
export interface Publication extends PublicationBody {
  /** The publication statement's id. */
  id: string;
  /** Why and by whom it was withdrawn, when a yank this node takes names it. */
  yanked?: string;
}

/** What the catalogue needs of the node. */
export interface CatalogueDeps {
  set: Pick<ApprovalStatementDeps["set"], "onAdded" | "statements">;
  meshId: () => string | undefined;
  /** Whether a device may publish, by this node's own view of the mesh's grants (`registry:publish`, or admin). */
  mayPublish: (deviceId: string) => { allowed: boolean; reason?: string };
  /** Whether a device is an admin of the mesh, by this node's view: admins may yank any publication. */
  isAdmin: (deviceId: string) => boolean;
  record: (body: AuditBody) => Promise<unknown>;
  onError?: (error: Error) => void;
}

/** The mesh's packages as this node sees them: every publication it takes, judged by its own view. */
export interface Catalogue {
  /** Publications this node takes, by name, newest version first; yanked ones say so. */
  list(kind: PublicationBody["kind"]): Publication[];
  /** The newest publication of `name` that `range` accepts and that is not yanked, or why there is none. */
  resolve(kind: PublicationBody["kind"], name: string, range: VersionRange): Publication | { missing: string };
  /** Why this node does not take a publication statement, or undefined when it does. */
  refusal(statement: SignedStatement<"publication">): string | undefined;
  close(): void;
}

/**
 * The registry's catalogue: publications are statements in the mesh's set,
 * so every member holds all of them; this node takes one only when it is for
 * this mesh, its publisher holds `registry:publish` now (by this node's view
 * of the grants: a relaying member cannot lend it) and no other publication
 * gives the same name and version other content. A refused
 * publication is audited when it arrives and never listed; one whose
 * publisher is granted the permission later is taken from then on.
 */
export function createCatalogue(deps: CatalogueDeps): Catalogue {
  const publications = (): Array<SignedStatement<"publication">> => deps.set.statements().flatMap((s) => asPublication(s) ?? []);

  /**
   * Each name and version's publication. Two that give it different content are both refused: which came first
   * rests on a time their signers chose, so taking either would let a publisher replace another's bytes.
   */
  const settle = (all: Array<SignedStatement<"publication">>, admitted: (s: SignedStatement<"publication">) => boolean): Map<string, SignedStatement<"publication"> | { conflict: string }> => {
    const groups = new Map<string, Array<SignedStatement<"publication">>>();
    for (const s of all) {
      if (!admitted(s)) continue;
      const key = `${s.body.kind}:${s.body.name}@${s.body.version}`;
      groups.set(key, [...(groups.get(key) ?? []), s]);
    }
    const settled = new Map<string, SignedStatement<"publication"> | { conflict: string }>();
    for (const [key, group] of groups) {
      group.sort((x, y) => x.body.publishedAt - y.body.publishedAt || (x.id < y.id ? -1 : 1));
      const first = group[0]!;
      const other = group.find((g) => g.body.tree !== first.body.tree);
      settled.set(key, other === undefined ? first : { conflict: `${first.body.name}@${first.body.version} is published with different content by ${first.body.publisher} (statement ${first.id.slice(0, 16)}) and by ${other.body.publisher} (statement ${other.id.slice(0, 16)}): neither is taken` });
    }
    return settled;
  };

  const standing = (s: SignedStatement<"publication">): string | undefined => {
    if (s.body.meshId !== deps.meshId()) return `signed for mesh ${s.body.meshId}, not this one`;
    const may = deps.mayPublish(s.body.publisher);
    return may.allowed ? undefined : `${s.body.publisher} may not publish: ${may.reason ?? "registry:publish not granted"}`;
  };

  /** The devices publishing each name (`kind:name`), among publications whose publisher may publish. */
  const publishersOf = (all: Array<SignedStatement<"publication">>): Map<string, Set<string>> => {
    const publishers = new Map<string, Set<string>>();
    for (const s of all) {
      if (standing(s) !== undefined) continue;
      const key = `${s.body.kind}:${s.body.name}`;
      publishers.set(key, (publishers.get(key) ?? new Set()).add(s.body.publisher));
    }
    return publishers;
  };

  /**
   * Why a member's publication of a name another device publishes is not taken. Which came first rests on times
   * the signers chose, so no member owns a name by being first: taking either would let one member publish a newer
   * version of another's package, which `skill update`, required skills and published agents then take everywhere.
   * Only an admin's version of such a name is taken.
   */
  const foreign = (s: SignedStatement<"publication">, publishers: Map<string, Set<string>>): string | undefined => {
    if (deps.isAdmin(s.body.publisher)) return undefined;
    const devices = [...(publishers.get(`${s.body.kind}:${s.body.name}`) ?? [])];
    // Named in one order on every node, whatever order the publications reached it in.
    return devices.every((p) => p === s.body.publisher) ? undefined : `${s.body.name} is published by more than one device (${devices.sort().join(", ")}): a member's version of a name another device publishes is not taken, only an admin's`;
  };

  const refusal = (s: SignedStatement<"publication">): string | undefined => {
    const all = publications();
    const publishers = publishersOf(all);
    const why = standing(s) ?? foreign(s, publishers);
    if (why !== undefined) return why;
    const settled = settle(all, (p) => standing(p) === undefined && foreign(p, publishers) === undefined).get(`${s.body.kind}:${s.body.name}@${s.body.version}`);
    return settled !== undefined && "conflict" in settled ? settled.conflict : undefined;
  };

  const yanks = (): Array<SignedStatement<"publication-yank">> => deps.set.statements().flatMap((s) => (s.kind === "publication-yank" ? [s] : []));

  /** Why this node does not take a yank of `target`, or undefined when it does. */
  const yankRefusal = (body: YankBody, target: SignedStatement<"publication"> | undefined): string | undefined => {
    if (body.meshId !== deps.meshId()) return `signed for mesh ${body.meshId}, not this one`;
    if (target === undefined) return `names publication ${body.publication.slice(0, 16)}, which this node does not hold`;
    return body.signer === target.body.publisher || deps.isAdmin(body.signer) ? undefined : `${body.signer} is neither the publisher of ${target.body.name}@${target.body.version} nor an admin`;
  };

  const list = (kind: PublicationBody["kind"]): Publication[] => {
    const all = publications();
    const byId = new Map(all.map((s) => [s.id, s]));
    const yanked = new Map<string, string>();
    for (const y of yanks()) if (yankRefusal(y.body, byId.get(y.body.publication)) === undefined) yanked.set(y.body.publication, `yanked by ${y.body.signer}: ${y.body.reason}`);
    const publishers = publishersOf(all);
    return [...settle(all, (s) => s.body.kind === kind && standing(s) === undefined && foreign(s, publishers) === undefined).values()]
      .flatMap((s) => ("conflict" in s ? [] : [s]))
      .map((s) => ({ ...s.body, id: s.id, ...(yanked.has(s.id) && { yanked: yanked.get(s.id)! }) }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : compareVersions(b.version, a.version)));
  };

  const unsubscribe = deps.set.onAdded((items) => {
    for (const s of statementsAdded(items)) {
      if (s.kind === "publication-yank") {
        const target = publications().find((p) => p.id === s.body.publication);
        const why = yankRefusal(s.body, target);
        if (why !== undefined) deps.record({ action: "registry.yank", userId: s.body.signer, deviceId: s.body.signer, resource: target === undefined ? s.body.publication : `${target.body.name}@${target.body.version}`, result: "denied", reason: `${why} (statement ${s.id.slice(0, 16)})` }).catch((err: Error) => deps.onError?.(err));
        continue;
      }
      const publication = asPublication(s);
      if (publication === undefined) continue;
      const why = refusal(publication);
      if (why === undefined) continue;
      const { publisher, name, version } = publication.body;
      deps.record({ action: "registry.publication", userId: publisher, deviceId: publisher, resource: `${name}@${version}`, result: "denied", reason: `${why} (statement ${publication.id.slice(0, 16)})` }).catch((err: Error) => deps.onError?.(err));
    }
  });

  return {
    list,
    refusal,
    resolve(kind, name, range) {
      const versions = list(kind).filter((p) => p.name === name);
      const accepted = versions.filter((p) => range.accepts(p.version));
      const found = accepted.find((p) => p.yanked === undefined);
      if (found !== undefined) return found;
      if (accepted.length > 0) return { missing: `every version of ${name} that ${range.text} accepts is yanked: ${accepted.map((p) => `${p.version} (${p.yanked!})`).join("; ")}` };
      const all = publications();
      const publishers = publishersOf(all);
      const shared = all.map((p) => (p.body.kind === kind && p.body.name === name && standing(p) === undefined ? foreign(p, publishers) : undefined)).find((why) => why !== undefined);
      if (shared !== undefined) return { missing: shared };
      const conflicts = [...settle(all, (p) => p.body.kind === kind && p.body.name === name && range.accepts(p.body.version) && standing(p) === undefined && foreign(p, publishers) === undefined).values()].flatMap((c) => ("conflict" in c ? [c.conflict] : []));
      if (conflicts.length > 0) return { missing: conflicts.join("; ") };
      if (versions.length === 0) return { missing: `no ${kind} ${name} is published in this mesh (or none by a device allowed to publish)` };
      return { missing: `no version of ${name} matches ${range.text}; published: ${versions.map((p) => p.version).join(", ")}` };
    },
    close: unsubscribe,
  };
}
