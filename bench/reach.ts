import "../src/polyfills.js";
import { startHost, type Host, type HostOptions } from "./reach/hosts.js";
import { createTopology, namespacesUnavailable, sweepStaleNamespaces, type NatKind } from "./reach/netns.js";
import { percentile, printResult, sized } from "./report.js";

/**
 * `npm run bench:reach` (root, Linux): members behind NAT routers in network
 * namespaces (bench/reach/netns.ts), measured in one run:
 * - per NAT kind, hole punching's success over N tries (A and B hang up, A
 *   dials B through R; a success is a direct connection within 10 s) and the
 *   time to it;
 * - time from B's join to a direct connection between A and B (cone NATs);
 * - round trip, routed task p50 and the throughput of a task's output (1 MB
 *   printed by a shell task) over the direct path (cone) and the relayed one
 *   (symmetric NATs, where the path stays relayed).
 */

/** `--tries <n>` (1-100): hole-punch tries per NAT kind, fewer on a busy machine. Default 10 (1 with `--smoke`: a try behind symmetric NATs waits its whole 10 s). */
function triesArg(): number | undefined {
  const at = process.argv.indexOf("--tries");
  if (at === -1) return undefined;
  const n = Number(process.argv[at + 1]);
  if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error(`--tries must be a whole number 1..100 (got ${process.argv[at + 1] ?? "nothing"})`);
  return n;
}

const TRIES = triesArg() ?? sized(10, 1);
const SAMPLES = sized(20, 3);
/** Lines of 999 characters and a newline a throughput task prints: 1 MB (a task keeps up to 1 MiB of output). */
const THROUGHPUT_LINES = sized(1000, 100);
const THROUGHPUT_RUNS = sized(3, 1);
const SHELL_FOR_DEVELOPERS = "remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\n";
const PUBLIC: HostOptions = { listen: ["/ip4/0.0.0.0/tcp/4001"], sandbox: "off" };
type Conn = { peer: string; addr: string };

async function until(pred: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const toPeer = async (from: Host, peer: string): Promise<Conn[]> => (await from.call<Conn[]>("connections")).filter((c) => c.peer === peer);
const hasDirect = async (from: Host, peer: string): Promise<boolean> => (await toPeer(from, peer)).some((c) => !c.addr.includes("/p2p-circuit"));

async function measure(nat: NatKind) {
  sweepStaleNamespaces();
  const t = createTopology({ nat });
  const hosts: Host[] = [];
  try {
    const start = async (name: string, ns: string, options: HostOptions): Promise<Host> => {
      const h = await startHost(name, ns, options);
      hosts.push(h);
      return h;
    };
    const r = await start("R", t.ns.R, { ...PUBLIC, relay: true });
    await r.call("createMesh", { name: "bench" });
    await r.call("signPolicy", { text: SHELL_FOR_DEVELOPERS });
    const a = await start("A", t.ns.A, PUBLIC);
    const b = await start("B", t.ns.B, PUBLIC);
    await a.call("join", { invite: await r.call<string>("invite") });
    await until(async () => (await r.call<string[]>("reservations")).includes(a.peerId), 20_000, "A's slot on R");
    const joining = Date.now();
    await b.call("join", { invite: await r.call<string>("invite") });
    let joinToDirectMs: number | undefined;
    await until(async () => (await a.call<boolean>("isMember", { peer: b.peerId })) && (await b.call<boolean>("isMember", { peer: a.peerId })), 30_000, "A and B members to each other");
    const viaR = `/ip4/${t.addr.RA}/tcp/4001/p2p/${r.peerId}/p2p-circuit/p2p/${b.peerId}`;
    if (nat === "cone") {
      await a.call("dial", { addr: viaR }).catch(() => undefined);
      await until(() => hasDirect(a, b.peerId), 30_000, "a direct A-B connection after the join");
      joinToDirectMs = Date.now() - joining;
    }

    const times: number[] = [];
    for (let i = 0; i < TRIES; i++) {
      await a.call("hangUp", { peer: b.peerId });
      await b.call("hangUp", { peer: a.peerId });
      await until(async () => !(await hasDirect(a, b.peerId)), 10_000, "A and B without a direct connection");
      const started = Date.now();
      await a.call("dial", { addr: viaR }).catch(() => undefined);
      while (Date.now() - started < 10_000) {
        if (await hasDirect(a, b.peerId)) {
          times.push(Date.now() - started);
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    // The path as it stands now: direct behind cone NATs, relayed behind symmetric ones.
    if (nat === "cone") await until(() => hasDirect(a, b.peerId), 15_000, "a direct A-B connection");
    else await a.call("dial", { addr: viaR }).catch(() => undefined);
    const ping = await a.call<{ path: string; rttMs: number[] }>("ping", { peer: b.peerId, count: SAMPLES });
    const routed: number[] = [];
    for (let i = 0; i < SAMPLES; i++) {
      const started = performance.now();
      const result = await a.call<{ status: string }>("run", { input: "echo ok", route: b.peerId }, 60_000);
      if (result.status !== "completed") throw new Error(`a routed task over the ${ping.path} path ended ${result.status}`);
      routed.push(performance.now() - started);
    }
    // Output streamed back over the path: a shell task printing 1 MB, submit -> completed (its start-up cost included).
    const rates: number[] = [];
    for (let i = 0; i < THROUGHPUT_RUNS; i++) {
      const started = performance.now();
      // One pipeline, not a loop of the shell's, so what is timed is mostly the output's way back.
      const input = `yes "$(printf '%0999d' 0)" | head -n ${THROUGHPUT_LINES}`;
      const result = await a.call<{ status: string; outputBytes: number }>("run", { input, route: b.peerId }, 120_000);
      if (result.status !== "completed" || result.outputBytes !== THROUGHPUT_LINES * 1000) throw new Error(`a 1 MB task over the ${ping.path} path ended ${result.status} with ${result.outputBytes} bytes`);
      rates.push(result.outputBytes / 1e6 / ((performance.now() - started) / 1000));
    }
    return {
      directSuccessRate: times.length / TRIES,
      timeToDirectP50Ms: times.length > 0 ? percentile(times, 50) : null,
      joinToDirectMs,
      path: ping.path,
      rttP50Ms: percentile(ping.rttMs, 50),
      routedTaskP50Ms: percentile(routed, 50),
      outputMBps: percentile(rates, 50),
    };
  } finally {
    for (const h of hosts.reverse()) await h.stop().catch(() => undefined);
    t.remove();
  }
}

async function main(): Promise<void> {
  const unavailable = namespacesUnavailable();
  if (unavailable !== undefined) throw new Error(`bench:reach needs network namespaces: ${unavailable}`);
  const cone = await measure("cone");
  const symmetric = await measure("symmetric");
  printResult("reach", {
    tries: TRIES,
    samples: SAMPLES,
    cone,
    symmetric,
    direct_success_rate_cone: cone.directSuccessRate,
    direct_success_rate_symmetric: symmetric.directSuccessRate,
    time_to_direct_p50_ms: cone.timeToDirectP50Ms,
    join_to_direct_ms: cone.joinToDirectMs,
    rtt_p50_ms_direct: cone.rttP50Ms,
    rtt_p50_ms_relayed: symmetric.rttP50Ms,
    routed_task_p50_ms_direct: cone.routedTaskP50Ms,
    routed_task_p50_ms_relayed: symmetric.routedTaskP50Ms,
    output_mb_per_s_direct: cone.outputMBps,
    output_mb_per_s_relayed: symmetric.outputMBps,
  });
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
