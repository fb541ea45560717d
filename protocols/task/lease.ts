import type { TaskStatus } from "../../src/contract/types.js";
import { isTerminal } from "../../src/engine/state-machine.js";
import { isTaskIdOf } from "../../src/engine/task-id.js";
import type { TaskMessage } from "./messages.js";

/**
 * The executor lease: how long a submitter trusts that a remote executor still
 * holds its task. The executor renews it for each submitter every
 * {@link LEASE_INTERVAL_MS} ({@link LeaseRenewals}); the submitter records the
 * renewals ({@link LeaseBook}) and presumes a task lost once neither its stream
 * nor a renewal spoke for {@link LEASE_TIMEOUT_MS} ({@link presumedLost}).
 */

/** Default interval of an executor's lease renewals, ms. */
export const LEASE_INTERVAL_MS = 1000;

/** Default executor silence after which a submitter presumes a remote task lost, ms: ten renewals missed. */
export const LEASE_TIMEOUT_MS = 10_000;

/** When an executor last vouched for a task, and the status it gave. */
export interface Lease {
  /** Milliseconds since the epoch, by the submitter's clock. */
  at: number;
  status: TaskStatus;
}

/** How many recently ended tasks a {@link LeaseBook} remembers, so that a renewal sent before the end and read after it does not lease the task again. */
export const ENDED_REMEMBERED = 4096;

/** The submitter's record of the leases its executors renewed. */
export class LeaseBook {
  readonly #leases = new Map<string, Lease>();
  /**
   * Tasks that ended here lately, oldest first. An executor reads a task's
   * status for a renewal round before it sends the round, so a round can say
   * `running` after the task's end was sent; without this the stale round
   * would lease an ended task for good. Bounded: a round is in flight for
   * moments, not for thousands of task ends.
   */
  readonly #ended = new Set<string>();
  /**
   * The executor of each task this side submitted or follows: a lease round
   * arrives unsolicited on any member's channel, and only the executor's own
   * counts. Another member's round would otherwise keep a dead executor's task
   * alive, so it is never placed again, or end it, so it is placed again while
   * its executor still runs it.
   */
  readonly #executors = new Map<string, string>();

  /**
   * `peer` executes `taskId`: its lease rounds renew the task's lease from now
   * on. A task id names its executor, so a member answering a submission with
   * the id of another's task does not take that task's lease over.
   */
  executes(taskId: string, peer: string): void {
    if (this.#ended.has(taskId)) return;
    const known = this.#executors.get(taskId);
    if (known === undefined || known === peer || (isTaskIdOf(taskId, peer) && !isTaskIdOf(taskId, known))) this.#executors.set(taskId, peer);
  }

  /** The executor vouched for `taskId` now. An ended task needs no lease, and keeping one per task ever submitted would grow without bound. */
  renew(taskId: string, status: TaskStatus): void {
    if (isTerminal(status)) {
      this.#leases.delete(taskId);
      this.#executors.delete(taskId);
      this.#ended.delete(taskId);
      this.#ended.add(taskId);
      if (this.#ended.size > ENDED_REMEMBERED) this.#ended.delete(this.#ended.values().next().value as string);
    } else if (!this.#ended.has(taskId)) this.#leases.set(taskId, { at: Date.now(), status });
  }

  /** Record the renewals a `lease` message from `peer` carries of the tasks `peer` executes. */
  renewAll(message: Extract<TaskMessage, { t: "lease" }>, peer: string): void {
    for (const t of message.tasks) if (this.#executors.get(t.id) === peer) this.renew(t.id, t.status);
  }

  /** The last renewal of `taskId`; undefined if never, or once the task has ended. */
  of(taskId: string): Lease | undefined {
    return this.#leases.get(taskId);
  }
}

/**
 * Whether a remote task is presumed lost: neither its own stream (last heard at
 * `lastHeard`) nor its executor's lease spoke within `timeoutMs`.
 */
export function presumedLost(lease: Lease | undefined, lastHeard: number, timeoutMs: number = LEASE_TIMEOUT_MS, now: number = Date.now()): boolean {
  return now - Math.max(lastHeard, lease?.at ?? 0) > timeoutMs;
}

/** Options of {@link LeaseRenewals}. */
export interface LeaseRenewalsOptions {
  /** A held task's status now; undefined when it is not known here. */
  statusOf(taskId: string): Promise<TaskStatus | undefined>;
  /** Where `peer`'s renewals go, or undefined while no channel to it is open. */
  sendTo(peer: string): ((message: TaskMessage) => void) | undefined;
  /** A fenced task passed its fence (`reason` says why); called once, at its fence time rather than at the next round. */
  onPastFence?(taskId: string, reason: string): void;
}

/** Share of a submitter's `fenceAfterMs` after which the executor stops a fenced task: it must stop before the submitter gives up on it. */
export const FENCE_SHARE = 0.8;

/** A task the executor stops once its submitter has not acknowledged a renewal for long enough. */
interface Fence {
  afterMs: number;
  /** Epoch ms from which silence counts before any acknowledged round. */
  since: number;
  /** Fires at the fence time; a round acknowledged meanwhile moves it on. */
  timer?: NodeJS.Timeout;
}

/**
 * The executor's side: the tasks each submitter holds a lease on, renewed in
 * each {@link LeaseRenewals.renew} round until the submitter has learnt their
 * end. Each round is numbered; the submitter acknowledges it (`leased`), and a
 * fenced task whose submitter has acknowledged nothing for
 * {@link FENCE_SHARE} of its `fenceAfterMs` is past its fence: the submitter
 * may re-place it elsewhere soon, so it must not also finish here.
 */
export class LeaseRenewals {
  readonly #held = new Map<string, Set<string>>();
  readonly #fences = new Map<string, { peer: string; fence: Fence }>();
  /** When each round was sent, per submitter; the last acknowledged round's time. */
  readonly #sent = new Map<string, Map<number, number>>();
  readonly #acknowledged = new Map<string, number>();
  #round = 0;

  constructor(private readonly options: LeaseRenewalsOptions) {}

  /** Stop `taskId` of `peer` once nothing was acknowledged for {@link FENCE_SHARE} of `afterMs`, counting from `since` at the earliest. */
  fence(peer: string, taskId: string, afterMs: number, since: number): void {
    this.#unfence(taskId);
    this.#fences.set(taskId, { peer, fence: { afterMs, since } });
    this.#arm(taskId);
  }

  /** Why `taskId` must not finish here now (its fence has passed), or undefined. */
  fenced(taskId: string, now = Date.now()): string | undefined {
    const f = this.#fences.get(taskId);
    if (f === undefined) return undefined;
    const silent = now - this.#heard(f.peer, f.fence);
    if (silent <= FENCE_SHARE * f.fence.afterMs) return undefined;
    return `superseded: lease lost (${f.peer} acknowledged nothing for ${silent} ms; it re-places the task after ${f.fence.afterMs} ms)`;
  }

  /** Forget every fence and its timer (the executor stops). */
  close(): void {
    for (const taskId of [...this.#fences.keys()]) this.#unfence(taskId);
  }

  #heard(peer: string, fence: Fence): number {
    return Math.max(fence.since, this.#acknowledged.get(peer) ?? 0);
  }

  /**
   * Time the fence itself rather than leave it to the renewal rounds: a round
   * every second would stop a task fenced at 1 s up to 1.8 s late, after its
   * submitter may have re-placed it. The fence stays (the outcome check reads
   * it) until the task is released.
   */
  #arm(taskId: string): void {
    const f = this.#fences.get(taskId);
    if (f === undefined) return;
    const due = this.#heard(f.peer, f.fence) + FENCE_SHARE * f.fence.afterMs - Date.now();
    f.fence.timer = setTimeout(
      () => {
        const reason = this.fenced(taskId);
        if (reason === undefined) this.#arm(taskId);
        else this.options.onPastFence?.(taskId, reason);
      },
      Math.max(0, Math.ceil(due)) + 1,
    );
    f.fence.timer.unref();
  }

  #unfence(taskId: string): void {
    clearTimeout(this.#fences.get(taskId)?.fence.timer);
    this.#fences.delete(taskId);
  }

  /** `peer` acknowledged lease round `round`. */
  acknowledge(peer: string, round: number): void {
    const sent = this.#sent.get(peer);
    const at = sent?.get(round);
    if (at === undefined) return;
    this.#acknowledged.set(peer, Math.max(this.#acknowledged.get(peer) ?? 0, at));
    for (const r of sent!.keys()) if (r <= round) sent!.delete(r);
  }

  /** `peer` submitted `taskId` here. */
  hold(peer: string, taskId: string): void {
    let tasks = this.#held.get(peer);
    if (tasks === undefined) {
      tasks = new Set();
      this.#held.set(peer, tasks);
    }
    tasks.add(taskId);
  }

  /** `peer` has the task's end from its stream: renewals need not tell it again, nor read the task back. */
  release(peer: string, taskId: string): void {
    this.#held.get(peer)?.delete(taskId);
    this.#unfence(taskId);
  }

  /** One round: each connected submitter hears the status of the tasks it holds; those reported ended are let go. */
  async renew(): Promise<void> {
    for (const [peer, held] of this.#held) {
      if (held.size === 0) continue;
      if (this.options.sendTo(peer) === undefined) continue;
      const tasks: Array<{ id: string; status: TaskStatus }> = [];
      for (const id of held) {
        const status = await this.options.statusOf(id).catch(() => undefined);
        if (status === undefined) continue;
        tasks.push({ id, status });
        if (isTerminal(status)) {
          held.delete(id);
          this.#unfence(id);
        }
      }
      // The channel it was to go on may have closed meanwhile; another may have opened.
      const send = this.options.sendTo(peer);
      if (send === undefined) continue;
      const round = this.#round++;
      let sent = this.#sent.get(peer);
      if (sent === undefined) {
        sent = new Map();
        this.#sent.set(peer, sent);
      }
      sent.set(round, Date.now());
      // Unacknowledged rounds are kept only a while: an acknowledgement that late proves nothing recent.
      if (sent.size > 64) sent.delete(sent.keys().next().value!);
      send({ t: "lease", round, tasks });
    }
  }
}
