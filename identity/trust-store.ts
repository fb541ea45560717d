import { decodeStatement, type SignedStatement } from "./statement.js";
import { isDeviceId } from "./device-id.js";
import { isGenesisConsistent } from "./mesh.js";
import { DEFAULT_TRUST_POLICY, type DeviceTrust, type TrustLevel, type TrustPolicy } from "./trust-level.js";

interface CertEdge {
  readonly id: string;
  readonly issuer: string;
  readonly subject: string;
  readonly level: "verified" | "trusted";
  /** First instant the certificate counts (issuedAt minus allowed clock skew). */
  readonly start: number;
  /** First instant it no longer counts (expiresAt, or Infinity). */
  readonly end: number;
}

interface Standing {
  readonly rank: 1 | 2;
  readonly depth: number;
  readonly certId: string;
  readonly vouchedBy: string;
}

interface RevocationState {
  readonly devices: ReadonlySet<string>;
  readonly certs: ReadonlySet<string>;
  /** Devices holding revocation authority: a trusted-level chain from the founder, ignoring time and revocations. */
  readonly authorities: Set<string>;
}

interface Evaluation {
  readonly now: number;
  /** The verdicts hold for every time in [validFrom, validUntil): no certificate starts or ends inside. */
  validFrom: number;
  validUntil: number;
  readonly standings: Map<string, Standing>;
}

const FOUNDER_STANDING: Standing = { rank: 2, depth: 0, certId: "", vouchedBy: "" };
const LEVELS: readonly TrustLevel[] = ["untrusted", "verified", "trusted"];

/**
 * The trust verdicts of one mesh, kept incrementally. Statements are added one
 * at a time in any order; verdicts are a pure function of the statement set,
 * the evaluation time and the policy, so two stores holding the same
 * statements agree.
 *
 * Rules:
 * - The founder (of the genesis whose self-certifying id is `meshId`) is trusted.
 * - A certificate counts while `issuedAt - clockSkew <= now < expiresAt`, when
 *   neither it nor its issuer or subject is revoked. A trusted device may
 *   certify trusted or verified; a verified device may certify verified only,
 *   and only within `transitiveDepth` verified-to-verified hops. A certificate
 *   above what its issuer may grant counts for nothing (it is not capped).
 * - A device's level is its best chain: trusted beats verified, then fewer
 *   hops, then the smaller certificate id (so `vouchedBy` is deterministic).
 * - Device revocation is permanent: it takes effect when signed by the device
 *   itself or by a revocation authority (founder, or a device with a chain of
 *   trusted-level certificates from the founder, judged ignoring time and
 *   revocations so the set of revocations in force only ever grows). Only the
 *   founder can revoke the founder, which ends the mesh.
 * - Certificate revocation kills that certificate only (so a fresh one can
 *   re-admit the subject); it takes effect when signed by the certificate's
 *   issuer, its subject, or a revocation authority.
 */
export class TrustStore {
  /** The mesh whose verdicts this store gives. */
  readonly meshId: string;
  /** The policy in force. */
  readonly policy: TrustPolicy;

  private readonly held = new Map<string, SignedStatement>();
  private genesisStatement: SignedStatement<"mesh-genesis"> | undefined;
  private readonly certs = new Map<string, CertEdge>();
  private readonly certsByIssuer = new Map<string, CertEdge[]>();
  private readonly revocations: SignedStatement<"revocation">[] = [];
  private readonly revokedTargets = new Set<string>();
  private readonly revokers = new Set<string>();
  private readonly known = new Set<string>();
  private revocationState: RevocationState | undefined;
  private evaluation: Evaluation | undefined;

  constructor(meshId: string, policy: Partial<TrustPolicy> = {}) {
    this.meshId = meshId;
    this.policy = { ...DEFAULT_TRUST_POLICY, ...policy };
  }

  /** The founder's device id, once the mesh's genesis is held. */
  get founder(): string | undefined {
    return this.genesisStatement?.body.founder;
  }

  /** The mesh's genesis statement, once held. */
  get genesis(): SignedStatement<"mesh-genesis"> | undefined {
    return this.genesisStatement;
  }

  /** Whether a statement with this id is held. */
  has(id: string): boolean {
    return this.held.has(id);
  }

  /** Every statement this store holds (what a node hands a newcomer). */
  statements(): SignedStatement[] {
    return [...this.held.values()];
  }

  /**
   * Adds one statement: bytes are strictly decoded and verified first (a
   * {@link DecodeError} on refusal); already verified statements are taken as
   * they are. Returns false when it was already held. Statements of other
   * meshes are held but never affect verdicts.
   */
  add(input: Uint8Array | SignedStatement): boolean {
    const statement = input instanceof Uint8Array ? decodeStatement(input) : input;
    if (this.held.has(statement.id)) return false;
    this.held.set(statement.id, statement);
    switch (statement.kind) {
      case "mesh-genesis":
        if (statement.body.meshId === this.meshId && isGenesisConsistent(statement.body) && this.genesisStatement === undefined) {
          this.genesisStatement = statement;
          this.known.add(statement.body.founder);
          this.invalidate();
        }
        break;
      case "trust-cert":
        if (statement.body.meshId === this.meshId) this.addCert(statement);
        break;
      case "revocation":
        this.revocations.push(statement);
        this.revokedTargets.add(statement.body.target);
        this.revokers.add(statement.issuer);
        this.invalidate();
        break;
      default:
        break;
    }
    return true;
  }

  /** Adds many statements; returns how many were new. */
  addAll(inputs: Iterable<Uint8Array | SignedStatement>): number {
    let added = 0;
    for (const input of inputs) if (this.add(input)) added += 1;
    return added;
  }

  /** The level of `deviceId` at time `now` (ms). */
  level(deviceId: string, now: number = Date.now()): TrustLevel {
    const standing = this.evaluate(now).standings.get(deviceId);
    return LEVELS[standing?.rank ?? 0] ?? "untrusted";
  }

  /** The full standing of `deviceId` at time `now`. */
  trustOf(deviceId: string, now: number = Date.now()): DeviceTrust {
    const standing = this.evaluate(now).standings.get(deviceId);
    const revoked = this.revocation().devices.has(deviceId);
    if (standing === undefined) return { deviceId, level: "untrusted", revoked };
    const trust: DeviceTrust = { deviceId, level: LEVELS[standing.rank] ?? "untrusted", revoked, depth: standing.depth };
    return standing.certId === "" ? trust : { ...trust, vouchedBy: standing.vouchedBy, certId: standing.certId };
  }

  /** Standings of every device the mesh's statements name, sorted by device id. */
  devices(now: number = Date.now()): DeviceTrust[] {
    return [...this.known].sort().map((id) => this.trustOf(id, now));
  }

  /** True once a device revocation of `deviceId` is in force (forever). */
  isRevoked(deviceId: string): boolean {
    return this.revocation().devices.has(deviceId);
  }

  /** True once a revocation of certificate `certId` is in force. */
  isCertRevoked(certId: string): boolean {
    return this.revocation().certs.has(certId);
  }

  private invalidate(): void {
    this.revocationState = undefined;
    this.evaluation = undefined;
  }

  private addCert(statement: SignedStatement<"trust-cert">): void {
    const { body } = statement;
    const edge: CertEdge = {
      id: statement.id,
      issuer: body.issuer,
      subject: body.subject,
      level: body.level,
      start: body.issuedAt - this.policy.clockSkewMs,
      end: body.expiresAt ?? Number.POSITIVE_INFINITY,
    };
    this.certs.set(edge.id, edge);
    const out = this.certsByIssuer.get(edge.issuer);
    if (out === undefined) this.certsByIssuer.set(edge.issuer, [edge]);
    else out.push(edge);
    this.known.add(edge.issuer);
    this.known.add(edge.subject);
    if (!this.keepRevocationState(edge)) {
      this.invalidate();
      return;
    }
    const evaluation = this.evaluation;
    if (evaluation === undefined) return;
    narrowWindow(evaluation, edge);
    if (this.counts(edge, evaluation.now)) this.relax([edge], evaluation);
  }

  // A new certificate leaves revocations in force unchanged unless one targets
  // it, or it hands revocation authority to a device that signed revocations.
  private keepRevocationState(edge: CertEdge): boolean {
    const state = this.revocationState;
    if (state === undefined) return true;
    if (this.revokedTargets.has(edge.id)) return false;
    if (edge.level !== "trusted" || !state.authorities.has(edge.issuer) || state.authorities.has(edge.subject)) return true;
    const grown = this.authorityClosure([edge.subject], state.authorities);
    for (const device of grown) if (this.revokers.has(device)) return false;
    for (const device of grown) state.authorities.add(device);
    return true;
  }

  private authorityClosure(start: string[], already: ReadonlySet<string>): Set<string> {
    const found = new Set(start);
    const queue = [...start];
    for (let device = queue.pop(); device !== undefined; device = queue.pop()) {
      for (const edge of this.certsByIssuer.get(device) ?? []) {
        if (edge.level === "trusted" && !already.has(edge.subject) && !found.has(edge.subject)) {
          found.add(edge.subject);
          queue.push(edge.subject);
        }
      }
    }
    return found;
  }

  /**
   * Why a revocation of device `target` signed by `issuer` would not take
   * effect under the rules above, or undefined when it would. Callers refuse
   * to sign one that would change nothing: a grow-only set cannot take it back.
   */
  deviceRevocationRefusal(issuer: string, target: string): string | undefined {
    const { devices, authorities } = this.revocation();
    if (devices.has(target)) return `device ${target} is already revoked`;
    if (target === this.founder) return issuer === target ? undefined : `only the founder can revoke the founder, and ${issuer} is not the founder`;
    if (issuer === target || authorities.has(issuer)) return undefined;
    return `${issuer} is not a revocation authority of this mesh (the founder, or a device with a chain of trusted certificates from it)`;
  }

  private revocation(): RevocationState {
    if (this.revocationState !== undefined) return this.revocationState;
    const founder = this.founder;
    const authorities = founder === undefined ? new Set<string>() : this.authorityClosure([founder], new Set());
    const devices = new Set<string>();
    const certs = new Set<string>();
    for (const { issuer, body } of this.revocations) {
      const cert = this.certs.get(body.target);
      if (cert !== undefined) {
        if (issuer === cert.issuer || issuer === cert.subject || authorities.has(issuer)) certs.add(cert.id);
      } else if (isDeviceId(body.target)) {
        const allowed = body.target === founder ? issuer === founder : issuer === body.target || authorities.has(issuer);
        if (allowed) devices.add(body.target);
      }
      // Otherwise it names a certificate not held yet; it takes effect when that arrives.
    }
    this.revocationState = { devices, certs, authorities };
    return this.revocationState;
  }

  private counts(edge: CertEdge, now: number): boolean {
    if (now < edge.start || now >= edge.end) return false;
    const revoked = this.revocation();
    return !revoked.certs.has(edge.id) && !revoked.devices.has(edge.issuer) && !revoked.devices.has(edge.subject);
  }

  private evaluate(now: number): Evaluation {
    const cached = this.evaluation;
    if (cached !== undefined && now >= cached.validFrom && now < cached.validUntil) return cached;
    const evaluation: Evaluation = { now, validFrom: Number.NEGATIVE_INFINITY, validUntil: Number.POSITIVE_INFINITY, standings: new Map() };
    for (const edge of this.certs.values()) narrowWindow(evaluation, edge);
    const founder = this.founder;
    if (founder !== undefined && !this.revocation().devices.has(founder)) {
      evaluation.standings.set(founder, FOUNDER_STANDING);
      this.relax(this.certsByIssuer.get(founder) ?? [], evaluation);
    }
    this.evaluation = evaluation;
    return evaluation;
  }

  // Worklist relaxation to the least fixpoint: adding a certificate can only
  // improve standings, so the same routine serves full and incremental updates.
  private relax(initial: readonly CertEdge[], evaluation: Evaluation): void {
    const { standings, now } = evaluation;
    const founder = this.founder;
    const maxDepth = this.policy.transitiveDepth;
    // FIFO keeps the walk breadth-first, so most devices settle on first visit.
    const queue: (readonly CertEdge[])[] = [initial];
    for (let head = 0; head < queue.length; head += 1) {
      const edges = queue[head] ?? [];
      for (const edge of edges) {
        if (edge.subject === founder) continue;
        const from = standings.get(edge.issuer);
        if (from === undefined || !this.counts(edge, now)) continue;
        let candidate: Standing;
        if (from.rank === 2) {
          candidate = edge.level === "trusted"
            ? { rank: 2, depth: from.depth + 1, certId: edge.id, vouchedBy: edge.issuer }
            : { rank: 1, depth: 0, certId: edge.id, vouchedBy: edge.issuer };
        } else if (edge.level === "verified" && from.depth + 1 <= maxDepth) {
          candidate = { rank: 1, depth: from.depth + 1, certId: edge.id, vouchedBy: edge.issuer };
        } else {
          continue;
        }
        const current = standings.get(edge.subject);
        if (current === undefined || better(candidate, current)) {
          standings.set(edge.subject, candidate);
          // What a device passes on depends on its rank and depth only, not on which certificate won the tie.
          const passesOnMore = current === undefined || candidate.rank !== current.rank || candidate.depth !== current.depth;
          const next = this.certsByIssuer.get(edge.subject);
          if (passesOnMore && next !== undefined) queue.push(next);
        }
      }
    }
  }
}

function better(a: Standing, b: Standing): boolean {
  if (a.rank !== b.rank) return a.rank > b.rank;
  if (a.depth !== b.depth) return a.depth < b.depth;
  return a.certId < b.certId;
}

function narrowWindow(evaluation: Evaluation, edge: CertEdge): void {
  narrowAt(evaluation, edge.start);
  narrowAt(evaluation, edge.end);
}

function narrowAt(evaluation: Evaluation, boundary: number): void {
  if (boundary <= evaluation.now) evaluation.validFrom = Math.max(evaluation.validFrom, boundary);
  else evaluation.validUntil = Math.min(evaluation.validUntil, boundary);
}

/**
 * Trust verdicts as a pure function: the standing of every named device in
 * `meshId` given `statements` at time `now`. Same set, any order: same result.
 */
export function evaluateTrust(
  meshId: string,
  statements: Iterable<SignedStatement>,
  now: number,
  policy: Partial<TrustPolicy> = {},
): DeviceTrust[] {
  const store = new TrustStore(meshId, policy);
  store.addAll(statements);
  return store.devices(now);
}
