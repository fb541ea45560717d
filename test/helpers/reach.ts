import { afterEach } from "vitest";
import { startHost, type Host, type HostOptions } from "../../bench/reach/hosts.js";
import { createTopology, namespacesUnavailable, sweepStaleNamespaces, type NatKind, type Topology, type TopologyOptions } from "../../bench/reach/netns.js";

/** A host reachable on every address of its namespace, on the port invites name; unsandboxed (tests run shell tasks as root). */
export const PUBLIC: HostOptions = { listen: ["/ip4/0.0.0.0/tcp/4001"], sandbox: "off" };

/** A mesh policy that lets members send each other work and developers run `shell`. */
export const SHELL_FOR_DEVELOPERS = "remote:\n  allow: true\nskillPolicies:\n  shell-exec:\n    dangerous: true\n    allowedRoles: [developer]\n";

/** What a namespace suite needs: whether it can run here, and hosts and topologies removed after each test. */
export interface ReachHarness {
  /** Why namespaces cannot be used here (the suite is skipped), or undefined. */
  unavailable: string | undefined;
  /** Run after the current test, last added first. */
  cleanups: Array<() => Promise<void> | void>;
  host(name: string, ns: string, options: HostOptions): Promise<Host>;
  /** A fresh NAT topology (stale namespaces of killed runs swept first). */
  topology(nat?: NatKind, options?: Omit<TopologyOptions, "nat">): Topology;
}

/** Call once at a suite file's top level: registers the cleanup after each test and says why the suite is skipped, if it is. */
export function reachHarness(suite: string): ReachHarness {
  const unavailable = namespacesUnavailable();
  if (unavailable !== undefined) console.warn(`skipping the ${suite} suite: ${unavailable}`);
  const cleanups: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  return {
    unavailable,
    cleanups,
    async host(name, ns, options) {
      const h = await startHost(name, ns, options);
      cleanups.push(() => h.stop());
      return h;
    },
    topology(nat, options = {}) {
      sweepStaleNamespaces();
      const t = createTopology(nat === undefined ? options : { ...options, nat });
      cleanups.push(t.remove);
      return t;
    },
  };
}
