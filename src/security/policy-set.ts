import { buildRoleTable } from "./roles.js";
import { parseRepoPolicy, parseTeamPolicy } from "./policy-file.js";
import type { RepoPolicy, TeamPolicy } from "./policy-schema.js";
import { openSignedPolicy, type SignedPolicy } from "./policy-statement.js";

/** Outcome of offering a signed policy. */
export interface PolicyOutcome {
  /** `accepted`: in force now; `ignored`: authentic and valid but not in force; `rejected`: forged, for another mesh, or invalid. */
  status: "accepted" | "ignored" | "rejected";
  reason: string;
  /** Who signed it, when that could be read. */
  issuer?: string;
}

type Candidate = { id: string; issuer: string; issuedAt: number } & ({ scope: "repo"; repo: RepoPolicy } | { scope: "team"; team: TeamPolicy });

/**
 * The policies that apply on a node: the local files, overridden per scope by the
 * signed mesh policy in force. Every authentic, valid signed policy is kept; the one
 * in force is the newest (by `issuedAt`, then statement id) whose issuer is an admin
 * at the time of asking, so neither arrival order nor a late admin grant matters.
 */
export class PolicySet {
  readonly #meshId: string;
  readonly #isAdmin: (id: string) => boolean;
  readonly #candidates = new Map<string, Candidate>();
  #localRepo: RepoPolicy | undefined;
  #localTeam: TeamPolicy | undefined;

  constructor(options: { meshId: string; isAdmin: (id: string) => boolean; repoPolicy?: RepoPolicy | undefined; teamPolicy?: TeamPolicy | undefined }) {
    this.#meshId = options.meshId;
    this.#isAdmin = options.isAdmin;
    this.#localRepo = options.repoPolicy;
    this.#localTeam = options.teamPolicy;
  }

  /** Replaces the local (file) policies. */
  setLocal(repoPolicy: RepoPolicy | undefined, teamPolicy: TeamPolicy | undefined): void {
    this.#localRepo = repoPolicy;
    this.#localTeam = teamPolicy;
  }

  /** Verifies, validates and keeps a signed policy; says whether it is in force now. */
  offer(policy: SignedPolicy): PolicyOutcome {
    const opened = openSignedPolicy(policy, this.#meshId);
    if (!opened.ok) return { status: "rejected", reason: opened.reason };
    const { body, id } = opened.statement;
    const issuer = body.issuer;
    const file = `mesh:${body.scope}-policy@${id.slice(0, 12)}`;
    let candidate: Candidate;
    try {
      if (body.scope === "repo") {
        const repo = parseRepoPolicy(policy.text, file);
        // Inheritance cycles are otherwise only found when an authorizer is built; refuse them on arrival.
        buildRoleTable(repo.roles);
        candidate = { scope: "repo", id, issuer, issuedAt: body.issuedAt, repo };
      } else {
        candidate = { scope: "team", id, issuer, issuedAt: body.issuedAt, team: parseTeamPolicy(policy.text, file) };
      }
    } catch (err) {
      return { status: "rejected", reason: (err as Error).message, issuer };
    }
    this.#candidates.set(id, candidate);
    if (!this.#isAdmin(issuer)) return { status: "ignored", reason: `issuer ${issuer} is not an admin of mesh ${this.#meshId}`, issuer };
    if (this.#inForce(body.scope)?.id !== id) return { status: "ignored", reason: `a newer ${body.scope} policy is in force`, issuer };
    return { status: "accepted", reason: `${body.scope} policy ${id.slice(0, 12)} in force`, issuer };
  }

  /** The repository and organization policies that apply now. */
  current(): { repo: RepoPolicy | undefined; team: TeamPolicy | undefined } {
    const repo = this.#inForce("repo");
    const team = this.#inForce("team");
    return {
      repo: repo?.scope === "repo" ? repo.repo : this.#localRepo,
      team: team?.scope === "team" ? team.team : this.#localTeam,
    };
  }

  /** True when signed policies are held, so grant changes may change what is in force. */
  get hasSigned(): boolean {
    return this.#candidates.size > 0;
  }

  #inForce(scope: "repo" | "team"): Candidate | undefined {
    let best: Candidate | undefined;
    for (const c of this.#candidates.values()) {
      if (c.scope !== scope || !this.#isAdmin(c.issuer)) continue;
      if (best === undefined || c.issuedAt > best.issuedAt || (c.issuedAt === best.issuedAt && c.id > best.id)) best = c;
    }
    return best;
  }
}
