import { randomBytes } from "node:crypto";
import { runAdmin } from "../../node-admin.js";
import { chmodSync, rmSync, writeFileSync } from "node:fs";
import { Command, Option } from "commander";
import { dataPaths, resolveDataDir } from "../../../src/runtime/data-dir.js";
import { EXIT } from "../exit-codes.js";
import type { AccessOptions } from "../runtime-access.js";
import { multiaddr } from "@multiformats/multiaddr";
import { CoderClawError } from "../../../src/contract/errors.js";
import { LOG_LEVELS, openNodeLog, type LogLevel } from "../node-log.js";
import type { RuntimeConfig } from "../../../src/config/runtime-config.js";
import type { IdentityProvider } from "../../../src/security/providers.js";

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** `--http` alone uses the configured address; `--http host:port` overrides it. */
function parseHttpFlag(flag: string | boolean | undefined): { http?: { host: string; port: number } } {
  if (typeof flag !== "string") return {};
  const m = /^(.+):(\d{1,5})$/.exec(flag);
  if (!m) throw new CoderClawError("INVALID_INPUT", `--http: ${JSON.stringify(flag)} is not host:port, e.g. 127.0.0.1:7420`, { field: "http" });
  return { http: { host: m[1]!.replace(/^\[|\]$/g, ""), port: Number(m[2]) } };
}

/** `--listen` takes a multiaddr; a bare port or host:port is refused with the form that would work. */
function parseListenFlag(flag: string): string {
  const port = /^(?:(.+):)?(\d{1,5})$/.exec(flag);
  if (port) {
    const host = port[1] ?? "0.0.0.0";
    throw new CoderClawError("INVALID_INPUT", `--listen: ${JSON.stringify(flag)} is not a multiaddr; for TCP port ${port[2]} write /ip4/${host}/tcp/${port[2]} (0.0.0.0 for every interface, 127.0.0.1 for this machine only)`, { field: "listen" });
  }
  try {
    return multiaddr(flag).toString();
  } catch (err) {
    throw new CoderClawError("INVALID_INPUT", `--listen: ${JSON.stringify(flag)} is not a multiaddr (${(err as Error).message}); e.g. /ip4/0.0.0.0/tcp/4001`, { field: "listen" });
  }
}

/**
 * libp2p reports addresses it could not listen on in one long message with a
 * stack trace per address; the user needs one line per address naming it.
 */
function listenFailure(err: unknown): CoderClawError | undefined {
  const message = err instanceof Error ? err.message : "";
  const failed = [...message.matchAll(/^\s*(\/\S+): (?:Error: )?(.+)$/gm)].map((m) => `cannot listen on ${m[1]}: ${m[2]!.replace(/^listen /, "")}`);
  return failed.length === 0 ? undefined : new CoderClawError("UNAVAILABLE", `${failed.join("; ")} (choose another --listen address, or stop what holds it)`, { cause: err });
}

/** `coderclaw start`: run a mesh node in the foreground until SIGINT/SIGTERM. */
/** The identity providers runtime.yaml's `auth` declares, for the HTTP API to exchange their tokens for sessions. */
async function identityProvidersOf(auth: RuntimeConfig["auth"]): Promise<Array<IdentityProvider<never>>> {
  const providers: Array<IdentityProvider<never>> = [];
  if (auth.oidc === undefined && auth.github === undefined) return providers;
  // jose comes with them: loaded only when a provider is declared.
  const { GitHubActionsIdentityProvider, OidcIdentityProvider } = await import("../../../src/security/providers.js");
  if (auth.oidc !== undefined) providers.push(new OidcIdentityProvider(withoutUndefined(auth.oidc)));
  if (auth.github !== undefined) providers.push(new GitHubActionsIdentityProvider(withoutUndefined({ ...auth.github, rules: auth.github.rules.map(withoutUndefined) })));
  return providers;
}

/** Which declared provider takes JWTs of `issuer`: GitHub Actions' issuer (or the one `auth.github` names) to `github`, `auth.oidc`'s to `oidc`. */
function providerForIssuer(auth: RuntimeConfig["auth"], issuer: string, githubIssuer: string): string | undefined {
  if (auth.github !== undefined && issuer === (auth.github.issuer ?? githubIssuer)) return "github";
  if (auth.oidc !== undefined && issuer === auth.oidc.issuer) return "oidc";
  return undefined;
}

/** The same object without its undefined fields (zod keeps optional keys absent, but the types say `| undefined`). */
function withoutUndefined<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> };
}

/** `--relay` alone is on; with a value, `true`/`false`/`auto` (as runtime.yaml's relay). */
function parseRelayFlag(value: string | boolean): boolean | "auto" {
  if (value === true || value === "true") return true;
  if (value === "false") return false;
  if (value === "auto") return "auto";
  throw new CoderClawError("INVALID_INPUT", `--relay takes true, false or auto, not "${String(value).slice(0, 40)}"`, { field: "relay" });
}

/** `--upnp` alone is on; with a value, `true` or `false` (as runtime.yaml's upnp). */
function parseUpnpFlag(value: string | boolean): boolean {
  if (value === true || value === "true") return true;
  if (value === "false") return false;
  throw new CoderClawError("INVALID_INPUT", `--upnp takes true or false, not "${String(value).slice(0, 40)}"`, { field: "upnp" });
}

export function startCommand(setExit: (code: number) => void): Command {
  return new Command("start")
    .description("run a node in the foreground; other commands on this machine reach it through its control socket")
    .option("--listen <multiaddr>", "listen address (repeatable; default /ip4/127.0.0.1/tcp/0, use /ip4/0.0.0.0/tcp/4001 for a LAN)", collect, [])
    .option("--bootstrap <multiaddr>", "peer to dial at start, with /p2p/<id> (repeatable)", collect, [])
    .option("--no-mdns", "no LAN discovery by mDNS")
    .option("--relay [mode]", "relay for members behind NATs (circuit relay v2, members only): on (no value, or true), off (false), or auto (only while members can dial this node); default from runtime.yaml's relay", parseRelayFlag)
    .option("--upnp [on]", "ask the home router (UPnP IGD or NAT-PMP) to forward the TCP listen port, and advertise the mapped public address: on (no value, or true) or off (false); default from runtime.yaml's upnp", parseUpnpFlag)
    .option("--max-concurrent <n>", "tasks executing at once", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 1000) throw new CoderClawError("INVALID_INPUT", "--max-concurrent must be a whole number 1..1000", { field: "maxConcurrent" });
      return n;
    })
    .option("--lease-timeout <ms>", "executor silence after which a remote task is presumed lost (default 10000)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 500 || n > 3_600_000) throw new CoderClawError("INVALID_INPUT", "--lease-timeout must be 500..3600000 ms", { field: "leaseTimeout" });
      return n;
    })
    .option("--http [host:port]", "serve the HTTP API (remote-enabled mode); default from runtime.yaml's http section, 127.0.0.1:7420")
    .addOption(new Option("--log-level <level>", "what goes to node.log in the data directory (read it with coderclaw logs)").choices(LOG_LEVELS).default("info"))
    .option("--log-max-bytes <n>", "past this size node.log becomes node.log.1 and a new one starts", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 4096 || n > 2 ** 40) throw new CoderClawError("INVALID_INPUT", `--log-max-bytes: ${JSON.stringify(v)} is not a whole number of bytes, at least 4096`, { field: "logMaxBytes" });
      return n;
    }, 10 * 1024 * 1024)
    .addHelpText("after", "\nExamples:\n  coderclaw start\n  coderclaw start --listen /ip4/0.0.0.0/tcp/4001 --http 127.0.0.1:7420\n  coderclaw start --log-level debug   # then: coderclaw logs -f\n")
    .action(async (opts: { listen: string[]; bootstrap: string[]; mdns: boolean; relay?: boolean | "auto"; upnp?: boolean; maxConcurrent?: number; leaseTimeout?: number; http?: string | boolean; logLevel: LogLevel; logMaxBytes: number }, cmd: Command) => {
      // The node stack is loaded only by the commands that run one, so quick commands start quickly.
      const [{ loadAgentRegistry }, { startNodeControl }, { createNode }, { loadRuntimeConfig }] = await Promise.all([
        import("../../../src/agents/index.js"),
        import("../../control/node-control.js"),
        import("../../create-node.js"),
        import("../../../src/config/runtime-config.js"),
      ]);
      const dataDir = resolveDataDir(cmd.optsWithGlobals<AccessOptions>().home);
      const config = loadRuntimeConfig({ cwd: process.cwd(), home: dataDir, overrides: parseHttpFlag(opts.http) }).config;
      const paths = dataPaths(dataDir);
      const log = openNodeLog({ dataDir, level: opts.logLevel, maxBytes: opts.logMaxBytes });
      const outputLimitBytes = config.deployment.maxOutputBytes;
      const agents = loadAgentRegistry({ dataDir, home: dataDir, workspaceDir: process.cwd(), shell: { outputLimitBytes }, commandOptions: { outputLimitBytes } });
      const listen = opts.listen.map(parseListenFlag);
      const node = await createNode({
        dataDir,
        agents,
        mdns: opts.mdns,
        relay: opts.relay ?? config.relay,
        upnp: opts.upnp ?? config.upnp,
        ...(listen.length > 0 && { listen }),
        ...(opts.bootstrap.length > 0 && { bootstrap: opts.bootstrap }),
        maxConcurrentTasks: opts.maxConcurrent ?? config.deployment.maxConcurrentTasks,
        maxOutputBytes: outputLimitBytes,
        labels: config.labels,
        resources: config.resources,
        code: config.code,
        sandbox: config.security.sandbox,
        workspaceDir: process.cwd(),
        identityProviders: await identityProvidersOf(config.auth),
        ...(opts.leaseTimeout !== undefined && { leaseTimeoutMs: opts.leaseTimeout, leaseIntervalMs: Math.max(100, Math.floor(opts.leaseTimeout / 5)) }),
        onError: (where, err) => {
          log.logger.error({ where, err: err.message }, "error");
          process.stderr.write(`[${where}] ${err.message}\n`);
        },
        onPairing: (e) => {
          log.logger.info({ role: e.role, ok: e.ok, peer: e.peer, detail: e.detail }, "pairing");
          process.stderr.write(`[pairing] ${e.role} ${e.ok ? "ok" : "refused"}${e.peer ? ` ${e.peer}` : ""}: ${e.detail}\n`);
        },
      }).catch((err: unknown) => {
        const failure = listenFailure(err) ?? err;
        log.logger.fatal({ err: failure instanceof Error ? failure.message : String(failure) }, "node did not start");
        log.close();
        throw failure;
      });
      const token = randomBytes(32).toString("hex");
      writeFileSync(paths.controlToken, token + "\n", { mode: 0o600 });
      // The mode above applies only to a file created now: one left by a node killed before it removed it keeps its own.
      chmodSync(paths.controlToken, 0o600);
      // Whatever fails from here on must not leave the node running behind a message: stop it, then report.
      const stopAll = async (): Promise<void> => {
        await control?.close();
        await http?.close();
        rmSync(paths.controlToken, { force: true });
        await node.stop();
        log.logger.info("stopped");
        log.close();
      };
      let control: { close(): Promise<void> } | undefined;
      let http: { url: string; close(): Promise<void> } | undefined;
      try {
        control = await startNodeControl(node, { socketPath: paths.controlSocket, token, httpUrl: () => http?.url });
        http = await serveHttpApi();
      } catch (err) {
        await stopAll();
        throw err;
      }
      async function serveHttpApi(): Promise<{ url: string; close(): Promise<void> } | undefined> {
        if (!(opts.http !== undefined || config.mode === "remote-enabled")) return undefined;
        const { createHttpServer, httpListenOptions, nodeCodeUploads, securityHttpHooks } = await import("../../http/index.js");
        // The security service is rebuilt when the node founds or joins a mesh; the HTTP hooks follow the current one.
        const service = new Proxy({} as typeof node.security.current, {
          get: (_t, key) => {
            const current = node.security.current;
            const value = Reflect.get(current, key) as unknown;
            return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(current) : value;
          },
        });
        const { httpWorkflows } = await import("../../workflows/http-workflows.js");
        const { GITHUB_ACTIONS_ISSUER } = await import("../../../src/security/providers.js");
        return createHttpServer({
          adapter: node.adapter,
          changes: (id, sources) => node.changes.open(id, sources),
          uploads: nodeCodeUploads(node),
          workflows: httpWorkflows(node.workflows, node.core.store),
          taskApprovals: node.taskApprovals,
          admin: (method, params) => runAdmin(node, method, params),
          ...httpListenOptions(config.http),
          ...securityHttpHooks(service, { deviceId: node.peerId, providerForIssuer: (issuer) => providerForIssuer(config.auth, issuer, GITHUB_ACTIONS_ISSUER) }),
        });
      }
      log.logger.info({ deviceId: node.peerId, meshId: node.membership.meshId ?? null, listening: node.multiaddrs().map(String), http: http?.url ?? null }, "started");
      // One line per task transition and per peer coming or going: what an operator reads back with `coderclaw logs`.
      const offTasks = node.core.engine.onEvent((taskId, e) => {
        if (e.type !== "status_changed") return;
        log.logger.info({ taskId, status: e.status, ...(e.message !== undefined && { detail: e.message.slice(0, 200) }) }, "task");
      });
      const peerEvent = (what: "peer connected" | "peer disconnected") => (evt: CustomEvent<{ toString(): string }>) => log.logger.info({ peer: evt.detail.toString() }, what);
      const onConnect = peerEvent("peer connected");
      const onDisconnect = peerEvent("peer disconnected");
      node.libp2p.addEventListener("peer:connect", onConnect);
      node.libp2p.addEventListener("peer:disconnect", onDisconnect);
      // Listen before the banner: whoever reads it (a supervisor, a test) may signal at once, and a signal with no
      // listener yet would kill the node without closing LevelDB.
      const stopRequested = new Promise<void>((resolve) => {
        process.once("SIGINT", resolve);
        process.once("SIGTERM", resolve);
      });
      process.stderr.write(
        [
          `coderclaw node ${node.peerId}`,
          `  fingerprint ${node.identity.fingerprint}`,
          `  mesh ${node.membership.meshId ?? "(none: coderclaw mesh create | mesh join <invite>)"}`,
          ...node.multiaddrs().map((a) => `  listening ${a}`),
          `  data ${dataDir}`,
          ...(http ? [`  http ${http.url} (tokens: coderclaw session create)`] : []),
          `  control socket ${paths.controlSocket}`,
          "",
        ].join("\n"),
      );
      await stopRequested;
      process.stderr.write("shutting down...\n");
      offTasks();
      node.libp2p.removeEventListener("peer:connect", onConnect);
      node.libp2p.removeEventListener("peer:disconnect", onDisconnect);
      log.logger.info("stopping");
      await stopAll();
      setExit(EXIT.ok);
    });
}
