import { spawnSync } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** What a router's port mapper speaks: UPnP IGD and NAT-PMP, or NAT-PMP only. */
export type PortMapping = "upnp" | "natpmp";

/** NAT-PMP's server port (RFC 6886), which miniupnpd opens last: once it listens, miniupnpd answers. */
const NAT_PMP_PORT = 5351;

/** Why a router cannot run a port mapper here, or undefined when it can. */
export function portMapperUnavailable(): string | undefined {
  for (const [tool, pkg] of [
    ["miniupnpd", "miniupnpd-nftables"],
    ["nft", "nftables"],
  ] as const) {
    if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) return `\`${tool}\` is missing (apt-get install -y ${pkg}; .ci/run does)`;
  }
  return undefined;
}

/**
 * Runs miniupnpd (UPnP IGD and NAT-PMP, or NAT-PMP only) in router namespace `ns`, forwarding
 * from `wan` to hosts of `lanSubnet` behind `lan`, each only to itself (secure
 * mode). Its rules go to a table of its own whose chains accept by default: the
 * router's iptables rules still decide, and let through only what a mapping
 * forwards (conntrack state DNAT). Returns once it answers; it runs until its
 * namespace is deleted (which kills what runs inside). Its mappings are
 * listed in `leaseFile`, a line each: `PROTO:external port:internal
 * address:internal port:expiry (Unix seconds):description`.
 */
export function startPortMapper(run: (ns: string, argv: string[]) => string, ns: string, lanSubnet: string, speaks: PortMapping, leaseFile: string): void {
  const dir = mkdtempSync(join(tmpdir(), "cc-upnp-"));
  try {
    const rules = join(dir, "upnp.nft");
    writeFileSync(
      rules,
      [
        "table inet upnp {",
        "  chain forward { type filter hook forward priority 0; policy accept; jump forward_upnp; }",
        "  chain forward_upnp { }",
        "  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_upnp; }",
        "  chain prerouting_upnp { }",
        "  chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_upnp; }",
        "  chain postrouting_upnp { }",
        "}",
        "",
      ].join("\n"),
    );
    run(ns, ["nft", "-f", rules]);
    const conf = join(dir, "miniupnpd.conf");
    writeFileSync(
      conf,
      [
        "ext_ifname=wan",
        "listening_ip=lan",
        "http_port=0",
        `enable_upnp=${speaks === "upnp" ? "yes" : "no"}`,
        "enable_natpmp=yes",
        "secure_mode=yes",
        "system_uptime=yes",
        `uuid=${randomUUID()}`,
        "upnp_table_name=upnp",
        "upnp_nat_table_name=upnp",
        "upnp_forward_chain=forward_upnp",
        "upnp_nat_chain=prerouting_upnp",
        "upnp_nat_postrouting_chain=postrouting_upnp",
        `lease_file=${leaseFile}`,
        `allow 1024-65535 ${lanSubnet} 1024-65535`,
        "deny 0-65535 0.0.0.0/0 0-65535",
        "",
      ].join("\n"),
    );
    // Without -d it forks into the background once its configuration is read; the namespace's deletion ends it.
    run(ns, ["miniupnpd", "-f", conf, "-P", join(dir, "miniupnpd.pid")]);
    waitForNatPmp(run, ns);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Polls until something in `ns` has NAT-PMP's UDP port open; throws after 10 s. */
function waitForNatPmp(run: (ns: string, argv: string[]) => string, ns: string): void {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  for (let tries = 0; tries < 200; tries++) {
    if (run(ns, ["ss", "-Hlun", `sport = :${NAT_PMP_PORT}`]).trim() !== "") return;
    Atomics.wait(pause, 0, 0, 50);
  }
  throw new Error(`miniupnpd in ${ns} did not open port ${NAT_PMP_PORT} within 10 s`);
}
