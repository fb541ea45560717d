import { Command, Option } from "commander";
import ms from "ms";
import { z } from "zod";
import { parseInput } from "../../../src/contract/parse-input.js";
import { isDeviceId } from "../../../identity/device-id.js";
import { resolveDevice } from "../id-prefix.js";
import { CoderClawError } from "../../../src/contract/errors.js";
import { resolveDataDir } from "../../../src/runtime/data-dir.js";
import { EXIT } from "../exit-codes.js";
import { humanTime, printJson, table } from "../output.js";
import { fieldsOption, printFields } from "../fields.js";
import { connectRunningNode, serverAdapter, type AccessOptions } from "../runtime-access.js";
import type { DoctorReport, PeerInfo, PingReport, PortMappingReport } from "../../node-api.js";

/**
 * Run an administrative call on the node of this data directory: the running one
 * through its control socket, or (when `offline` allows) a node started in this
 * process for the call.
 */
export async function admin(cmd: Command, method: string, params: unknown, offline: boolean): Promise<unknown> {
  return withAdmin(cmd, offline, (call) => call(method, params));
}

/** An administrative call, as {@link withAdmin} hands them out. */
export type AdminCall = (method: string, params: unknown) => Promise<unknown>;

/** As {@link admin}, for `use` to make several calls on one connection (or one node started for them). */
export async function withAdmin<T>(cmd: Command, offline: boolean, use: (call: AdminCall) => Promise<T>): Promise<T> {
  const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
  const client = await connectRunningNode(dataDir);
  if (client) {
    try {
      return await use((method, params) => client.admin(method, params));
    } finally {
      await client.close();
    }
  }
  if (!offline) throw new CoderClawError("UNAVAILABLE", "this needs a running node: start one with `coderclaw start`");
  const [{ createNode }, { runAdmin }] = await Promise.all([import("../../create-node.js"), import("../../node-admin.js")]);
  // Listening on nothing: a node started for one call has no one to serve, and on the default address it took the
  // port the real node keeps whenever that was free, so a `coderclaw start` at the same moment got another.
  const node = await createNode({ dataDir, mdns: false, listen: [] });
  try {
    return await use((method, params) => runAdmin(node, method, params));
  } finally {
    await node.stop();
  }
}

/** `coderclaw doctor` as text: one finding a line, then the members, then the hints. */
export function doctorText(r: DoctorReport): string {
  const reach = r.reachability;
  const nat = reach.translated === undefined ? "unknown" : !reach.translated ? "none (address not translated)" : reach.portPreserving === undefined ? "translated, port behaviour unknown" : reach.portPreserving ? "translated, keeps ports (cone)" : "translated, new port per connection (symmetric)";
  return [
    `reachability  ${reach.reachability === "private" ? "behind NAT" : reach.reachability === "loopback" ? "this machine only (loopback)" : reach.reachability}${reach.by === undefined ? "" : ` (asked ${reach.by} at ${reach.checkedAt})`}`,
    `observed      ${reach.observedIp ?? "unknown"}`,
    `NAT           ${nat}`,
    `listening     ${r.listening.join(" ") || "nothing"}`,
    `relays        ${r.relaysReserved.join(" ") || "none reserved"}${r.relayServing ? "; serving relay for members" : ""}`,
    ...describePortMapping(r.portMapping).map((line, i) => `${i === 0 ? "port mapping" : "            "}  ${line}`),
    "members",
    ...(r.members.length === 0 ? ["  none connected"] : r.members.map((m) => `  ${m.peerId} ${describePath(m)}${m.latencyMs === undefined ? "" : ` ${m.latencyMs} ms`} since ${m.since}`)),
    ...r.hints.map((h) => `hint: ${h}`),
    "",
  ].join("\n");
}

/** The router's port mappings, one line each (the first says the state when nothing is mapped). */
export function describePortMapping(p: PortMappingReport): string[] {
  const state = { off: "off (start with --upnp to ask the router)", searching: "looking for a router (UPnP, then NAT-PMP)", "no-router": "no router answered UPnP or NAT-PMP", mapping: "a router answered; mapping", mapped: "mapped", failed: "the router refused" }[p.state];
  const lines = p.mappings.map((m) => `${m.by === "upnp" ? "UPnP" : "NAT-PMP"} router ${m.router}: ${m.external ?? "?"} -> ${m.internal} ${m.transport}, ${m.state}${m.error === undefined ? "" : ` (${m.error})`} since ${m.since}, lease ${m.leaseSeconds} s`);
  return p.state === "mapped" ? lines : [state, ...lines];
}

export function describePath(p: { path: "direct" | "relayed"; via?: string }): string {
  return p.path === "direct" ? "direct" : `relayed via ${p.via ?? "?"}`;
}

/** What resolving a device needs of a server's `GET /v1/devices` answer. */
const ServerDevicesSchema = z.object({
  devices: z.array(z.object({ deviceId: z.string().max(128), name: z.string().max(63).optional(), fingerprint: z.string().max(64).optional() })).max(100_000),
});

/**
 * A device id from a full id, a device's name, or a unique prefix of an id or
 * fingerprint, among the devices of the node the command talks to: with
 * `--server`, that server's (`GET /v1/devices`), else this machine's node.
 */
export async function resolveDeviceId(cmd: Command, text: string): Promise<string> {
  if (isDeviceId(text)) return text;
  type Listed = Array<{ deviceId: string; name?: string; fingerprint?: string }>;
  const server = serverAdapter(cmd.optsWithGlobals<AccessOptions>());
  let devices: Listed;
  if (server === undefined) devices = (await admin(cmd, "devices.list", undefined, true)) as Listed;
  else {
    try {
      devices = parseInput(ServerDevicesSchema, await server.call("GET", "/devices"), "GET /v1/devices").devices;
    } finally {
      await server.close();
    }
  }
  return resolveDevice(text, devices, isDeviceId);
}

/** `--ttl`: a duration in the grammar every CLI duration uses (`ms`: 90s, 10m, 2h, 1d). */
export function parseTtl(text: string): number {
  const span = ms(text as ms.StringValue);
  if (typeof span !== "number" || !Number.isFinite(span) || span <= 0) throw new CoderClawError("INVALID_INPUT", `--ttl: ${JSON.stringify(text)} is not a duration like 90s, 10m, 2h or 1d`, { field: "ttl" });
  return span;
}

/** `coderclaw id`, `peers`, `mesh ...` and `devices ...`. */
export function meshCommands(setExit: (code: number) => void): Command[] {
  const id = new Command("id")
    .description("this device's id (its PeerId) and a short fingerprint to compare by eye")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const { loadOrCreateDeviceIdentity } = await import("../../../identity/device.js");
      const identity = await loadOrCreateDeviceIdentity(resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home));
      if (opts.json) printJson({ deviceId: identity.peerId, fingerprint: identity.fingerprint });
      else process.stdout.write(`${identity.peerId}\nfingerprint ${identity.fingerprint}\n`);
      setExit(EXIT.ok);
    });

  const peers = new Command("peers")
    .description("connected peers with trust level, path (direct, or relayed through whom), latency and since when")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      const list = (await admin(cmd, "node.peers", undefined, false)) as PeerInfo[];
      if (opts.fields) printFields(list, opts.fields, opts.json === true);
      else if (opts.json) printJson(list);
      else {
        const t = table(["peer", "name", "level", "path", "latency", "since", "agents", "load", "address"]);
        for (const p of list) {
          t.push([p.peerId, p.name ?? "", p.level, describePath(p), p.latencyMs === undefined ? "" : `${p.latencyMs} ms`, p.since, (p.agents ?? []).join(", "), p.load ?? "", p.addrs.join(" ")]);
        }
        process.stdout.write(list.length === 0 ? "no peers connected\n" : t.toString() + "\n");
      }
      setExit(EXIT.ok);
    });

  const ping = new Command("ping")
    .description("measure the round trip to a peer on the path this node uses for it (direct, or through a relay)")
    .argument("<peer>", "the peer: its device id, name, or a unique prefix of its id")
    .option("-c, --count <n>", "pings to send (1..100)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 100) throw new Error("--count must be a whole number 1..100");
      return n;
    }, 3)
    .option("--json", "print JSON")
    .action(async (peer: string, opts: { count: number; json?: boolean }, cmd: Command) => {
      const report = (await admin(cmd, "node.ping", { peer: await resolveDeviceId(cmd, peer), count: opts.count }, false)) as PingReport;
      if (opts.json) printJson(report);
      else {
        const sorted = [...report.rttMs].sort((a, b) => a - b);
        process.stdout.write(
          [
            `${report.peerId} ${describePath(report)} (${report.addr})`,
            ...report.rttMs.map((ms, i) => `  ping ${i + 1}: ${ms} ms`),
            `  min ${sorted[0]} ms, median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${sorted[sorted.length - 1]} ms`,
            "",
          ].join("\n"),
        );
      }
      setExit(EXIT.ok);
    });

  const doctor = new Command("doctor")
    .description("reachability (public / behind NAT / this machine only / unknown), NAT behaviour as observed, listening addresses, relays and each member's path, with hints")
    .option("--json", "print JSON")
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const r = (await admin(cmd, "node.doctor", undefined, false)) as DoctorReport;
      if (opts.json) printJson(r);
      else process.stdout.write(doctorText(r));
      setExit(EXIT.ok);
    });

  const mesh = new Command("mesh")
    .description("create, invite to and join a mesh")
    .addHelpText("after", "\nExamples:\n  coderclaw mesh create --name home          # on the first device\n  coderclaw mesh invite --level trusted       # prints an invite, valid 10 minutes\n  coderclaw mesh join <invite>                # on the new device\n  coderclaw mesh status\n");
  mesh
    .command("create")
    .description("found a mesh with this device as its first, trusted member")
    .option("--name <name>", "mesh name", "my mesh")
    .option("--json", "print JSON")
    .action(async (opts: { name: string; json?: boolean }, cmd: Command) => {
      const r = (await admin(cmd, "mesh.create", { name: opts.name }, true)) as { meshId: string };
      if (opts.json) printJson(r);
      else process.stdout.write(`created mesh ${r.meshId} (${opts.name})\n`);
      setExit(EXIT.ok);
    });
  mesh
    .command("invite")
    .description("print a one-time invite (and a QR code on a terminal) for another device to join")
    .addOption(new Option("--level <level>", "level the new device gets").choices(["verified", "trusted"]).default("verified"))
    .option("--ttl <duration>", "validity, e.g. 10m", "10m")
    .option("--json", "print JSON")
    .action(async (opts: { level: string; ttl: string; json?: boolean }, cmd: Command) => {
      const r = (await admin(cmd, "mesh.invite", { level: opts.level, ttlMs: parseTtl(opts.ttl) }, false)) as { invite: string; expiresAt: number };
      if (opts.json) printJson({ ...r, expiresAt: new Date(r.expiresAt).toISOString() });
      else {
        process.stdout.write(`${r.invite}\n`);
        if (process.stdout.isTTY) process.stdout.write((await import("../../../identity/qr.js")).renderQr(r.invite) + "\n");
        process.stderr.write(`single use; expires ${humanTime(r.expiresAt)}; on the other device: coderclaw mesh join <invite>\n`);
      }
      setExit(EXIT.ok);
    });
  mesh
    .command("join")
    .description("join the mesh of an invite: dial the inviter and pair")
    .argument("<invite>", "the invite string")
    .option("--json", "print JSON")
    .action(async (invite: string, opts: { json?: boolean }, cmd: Command) => {
      const r = (await admin(cmd, "mesh.join", { invite }, true)) as { meshId: string; comparisonCode: string; level: string; peer: string };
      if (opts.json) printJson(r);
      else process.stdout.write(`joined mesh ${r.meshId} as ${r.level}\ncomparison code ${r.comparisonCode} (the inviter's node shows the same)\n`);
      setExit(EXIT.ok);
    });
  mesh
    .command("status")
    .description("this node's mesh")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      const r = await admin(cmd, "mesh.status", undefined, true);
      if (opts.fields) printFields([r], opts.fields, opts.json === true);
      else if (opts.json) printJson(r);
      else process.stdout.write(Object.entries(r as object).map(([k, v]) => `${k.padEnd(8)} ${String(v)}`).join("\n") + "\n");
      setExit(EXIT.ok);
    });

  const devices = new Command("devices")
    .description("devices of the mesh and their trust")
    .addHelpText("after", "\nExamples:\n  coderclaw devices list\n  coderclaw devices list --fields deviceId,level,connected\n  coderclaw devices trust laptop --level trusted\n  coderclaw devices rename 12D3KooWAbc laptop   # by id prefix\n  coderclaw devices revoke laptop --reason lost\n");
  devices
    .command("list")
    .description("devices with level, who vouched and whether connected")
    .option("--json", "print JSON")
    .addOption(fieldsOption())
    .action(async (opts: { json?: boolean; fields?: string[] }, cmd: Command) => {
      const list = (await admin(cmd, "devices.list", undefined, true)) as Array<{ deviceId: string; name?: string; level: string; revoked: boolean; vouchedBy?: string; connected: boolean; self: boolean; lastSeen?: string }>;
      if (opts.fields) printFields(list, opts.fields, opts.json === true);
      else if (opts.json) printJson(list);
      else {
        const t = table(["device", "name", "level", "vouched by", "connected", "last seen"]);
        for (const d of list) t.push([d.self ? `${d.deviceId} (this device)` : d.deviceId, d.name ?? "", d.revoked ? "revoked" : d.level, d.vouchedBy ?? (d.level === "trusted" && !d.vouchedBy ? "founder" : ""), d.connected ? "yes" : "", humanTime(d.lastSeen)]);
        process.stdout.write(t.toString() + "\n");
      }
      setExit(EXIT.ok);
    });
  devices
    .command("trust")
    .description("vouch for a device at a level (signed by this device)")
    .argument("<device>", "device id, name, or a unique prefix of an id")
    .addOption(new Option("--level <level>", "level").choices(["verified", "trusted"]).makeOptionMandatory())
    .action(async (idArg: string, opts: { level: string }, cmd: Command) => {
      const deviceId = await resolveDeviceId(cmd, idArg);
      const r = (await admin(cmd, "devices.trust", { deviceId, level: opts.level }, true)) as { certificate: string };
      process.stdout.write(`certificate ${r.certificate}\n`);
      setExit(EXIT.ok);
    });
  devices
    .command("revoke")
    .description("revoke a device for good: every node the revocation reaches disconnects and refuses it")
    .argument("<device>", "device id, name, or a unique prefix of an id")
    .option("--reason <text>", "why", "")
    .action(async (idArg: string, opts: { reason: string }, cmd: Command) => {
      const deviceId = await resolveDeviceId(cmd, idArg);
      const r = (await admin(cmd, "devices.revoke", { deviceId, reason: opts.reason }, true)) as { revocation: string };
      process.stdout.write(`revocation ${r.revocation}\n`);
      setExit(EXIT.ok);
    });
  devices
    .command("rename")
    .description("name a device (signed into the mesh's records, so every member shows it): this device, or any as an admin")
    .argument("<device>", "device id, current name, or a unique prefix of an id")
    .argument("<name>", "new name: letters, digits, '.', '_' or '-', at most 63")
    .option("--json", "print JSON")
    .action(async (idArg: string, name: string, opts: { json?: boolean }, cmd: Command) => {
      const deviceId = await resolveDeviceId(cmd, idArg);
      const r = (await admin(cmd, "devices.rename", { deviceId, name }, true)) as { device: string; name: string; previous?: string };
      if (opts.json) printJson(r);
      else process.stdout.write(`${r.device} is now ${r.name}${r.previous === undefined ? "" : ` (was ${r.previous})`}\n`);
      setExit(EXIT.ok);
    });

  return [id, peers, ping, doctor, mesh, devices];
}
