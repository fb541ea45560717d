/**
 * `.coderClaw/runtime.yaml`: how this node runs (mode, transport, security,
 * deployment, HTTP listener). Values come from defaults, the file, environment
 * variables and command-line flags, in that order of precedence, and every
 * effective value remembers where it came from for `coderclaw config show`.
 *
 * The file's `agents:` and `llm:` sections belong to the agents configuration
 * (agents-config.ts); this loader leaves them to it, and `checkRuntimeConfig`
 * validates both.
 */
import { existsSync, readFileSync } from "node:fs";
import { MAX_OUTPUT_LIMIT } from "../agents/output-limit.js";
import { homedir } from "node:os";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { z } from "zod";
import type { RuntimeMode } from "../contract/types.js";
import { CoderClawError } from "../contract/errors.js";
import { MAX_REQUIREMENTS, RequirementNameSchema } from "../contract/submit-options.js";
import { parseAgentsConfig } from "./agents-config.js";
import { isLoopbackHost } from "../util/loopback.js";
import { ConfigError, configErrorAt, locate, parseYamlSource, validateYaml, type YamlSource } from "./yaml-source.js";

/** Largest runtime.yaml read: 1 MiB. */
export const MAX_RUNTIME_CONFIG_BYTES = 1024 * 1024;

/** Path of the runtime configuration inside a project or the CoderClaw home. */
export const RUNTIME_CONFIG_PATH = join(".coderClaw", "runtime.yaml");

/** The effective runtime configuration. */
export interface RuntimeConfig {
  mode: RuntimeMode;
  transport: {
    /** How clients of this configuration reach the runtime: in-process, a node's HTTP API, or the mesh. */
    type: "local" | "http" | "libp2p";
    enabled: boolean;
    /** The node to talk to when `type` is `http`. */
    baseUrl?: string;
  };
  security: {
    enforceTrust: boolean;
    requireAuth: boolean;
    /** Roles a new session gets when nothing grants it more. */
    defaultRoles: string[];
    /** Processes for work other devices submit run in a bubblewrap sandbox (`required`) or not (`off`). */
    sandbox: "required" | "off";
  };
  deployment: {
    /** Defaults to, and must equal, the top-level `mode`. */
    mode: RuntimeMode;
    /** Accept sessions from other machines (HTTP, mesh). Defaults to true unless `local-only`. */
    allowRemoteSessions: boolean;
    maxConcurrentTasks: number;
    /** Output a task keeps and streams, in bytes: its history and the built-in and command agents' limit. Default 1 MiB. */
    maxOutputBytes: number;
  };
  /**
   * Serve circuit relay v2 to members (for members behind NATs): `true`,
   * `false`, or `auto` (only while members can dial this node, as they find by
   * dialling it back); `coderclaw start --relay [auto]` too.
   */
  relay: boolean | "auto";
  /** Ask the home router (UPnP IGD or NAT-PMP) to forward the node's TCP listen port and advertise the mapped public address; `coderclaw start --upnp` too. */
  upnp: boolean;
  /** Labels this node advertises to the mesh; a task may require them (`--requires gpu`). */
  labels: string[];
  /** Resources this node advertises (`cpu: 8`, `memoryGiB: 32`); a task may require at least an amount (`--requires cpu>=4`). */
  resources: Record<string, number>;
  /** Tasks that carry code (`task submit --repo`): which agents may receive it here, and how much. */
  code: {
    /** Agents that may run tasks carrying code sent by other devices; absent: every agent. */
    agents?: string[];
    /** Largest tree sent or received, bytes. */
    maxTreeBytes: number;
    /**
     * Bytes of a submission's snapshot that only its working tree holds
     * (changed and untracked files, every file outside a repository) kept in
     * the blob store at submit, so the task runs on them whatever is edited
     * while it waits; absent: a quarter of the blob store's quota.
     */
    keepBytes?: number;
  };
  http: {
    host: string;
    port: number;
    /** Paths to PEM files, resolved against the configuration file's directory. */
    tls?: { cert: string; key: string };
    bodyLimit?: number;
    /** Host names besides loopback ones that a node bound to loopback answers (a reverse proxy passing its own name on). */
    allowedHosts?: string[];
  };
  /** Identity providers whose tokens the HTTP API exchanges for sessions, besides the node's own session tokens. */
  auth: {
    /** An OpenID Connect issuer (see `OidcProviderOptions`). */
    oidc?: z.infer<typeof OidcSchema>;
    /** GitHub Actions OIDC tokens, accepted by rules on their repository, workflow and ref (see `GitHubProviderOptions`). */
    github?: z.infer<typeof GitHubSchema>;
  };
}

/** Where one effective value came from: `default`, `file:<path>:<line>`, `env:<VAR>` or `flag`. */
export type ConfigSource = "default" | `file:${string}:${number}` | `env:${string}` | "flag";

/** A loaded configuration with the origin of each value, keyed by dotted path (`http.port`). */
export interface LoadedRuntimeConfig {
  config: RuntimeConfig;
  sources: Record<string, ConfigSource>;
  /** The file read, or undefined when none exists. */
  file?: string;
  /** Valid but risky settings, worded for a person. */
  warnings: string[];
}

/** Flags from the command line, the highest precedence. */
export interface RuntimeConfigOverrides {
  mode?: RuntimeMode;
  transport?: Partial<RuntimeConfig["transport"]>;
  security?: Partial<RuntimeConfig["security"]>;
  deployment?: Partial<RuntimeConfig["deployment"]>;
  http?: Partial<Omit<RuntimeConfig["http"], "tls">> & { tls?: Partial<NonNullable<RuntimeConfig["http"]["tls"]>> };
}

/** Options of {@link loadRuntimeConfig}. */
export interface LoadRuntimeConfigOptions {
  /** Project directory; its `.coderClaw/runtime.yaml` wins over the home one. Default `process.cwd()`. */
  cwd?: string;
  /** Environment to read; default `process.env`. */
  env?: Readonly<Record<string, string | undefined>>;
  overrides?: RuntimeConfigOverrides;
  /** Read exactly this file (it must exist) instead of searching. */
  file?: string;
  /** The CoderClaw home searched after the project (`--home`); default `$CODERCLAW_HOME`, else `~/.coderclaw`. */
  home?: string;
}

const modeSchema = z.enum(["local-only", "remote-enabled", "distributed-cluster"]);
const httpsUrl = z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).max(2048);
const roleList = z.array(z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, "must be a role name like 'ci'")).max(32);
const OidcSchema = z.strictObject({
  issuer: z.string().min(1).max(2048),
  audience: z.union([z.string().min(1).max(512), z.array(z.string().min(1).max(512)).min(1).max(16)]),
  jwksUrl: httpsUrl,
  userIdClaim: z.string().min(1).max(128).optional(),
  rolesClaim: z.string().min(1).max(128).optional(),
  roleMap: z.record(z.string().min(1).max(256), roleList).optional(),
});
/** A GitHub rule's pattern of a claim: `*` for any run of characters; no negation. */
const claimPattern = (max: number) => z.string().min(1).max(max).refine((p) => !p.startsWith("!"), 'may not start with "!": a pattern matches with *, it has no negation');
const GitHubSchema = z.strictObject({
  audience: z.string().min(1).max(512),
  rules: z
    .array(
      z.strictObject({
        repository: claimPattern(256),
        workflow: claimPattern(256).optional(),
        jobWorkflowRef: claimPattern(1024).optional(),
        ref: claimPattern(256).optional(),
        identity: z.string().min(1).max(256),
        roles: roleList.min(1),
      }),
    )
    .min(1)
    .max(100),
  issuer: z.string().min(1).max(2048).optional(),
  jwksUrl: httpsUrl.optional(),
});
const roleSchema = z.string().regex(/^[a-z][a-z0-9_-]{0,63}$/, "must be a role name like 'developer'");

/** Every setting, by dotted path: its schema, default and environment variable. */
const SETTINGS = {
  mode: { schema: modeSchema, env: "CODERCLAW_MODE" },
  "transport.type": { schema: z.enum(["local", "http", "libp2p"]), env: "CODERCLAW_TRANSPORT" },
  "transport.enabled": { schema: z.boolean() },
  "transport.baseUrl": { schema: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }).max(2048), env: "CODERCLAW_SERVER" },
  "security.enforceTrust": { schema: z.boolean(), env: "CODERCLAW_ENFORCE_TRUST" },
  "security.requireAuth": { schema: z.boolean(), env: "CODERCLAW_REQUIRE_AUTH" },
  "security.defaultRoles": { schema: z.array(roleSchema).max(32), env: "CODERCLAW_DEFAULT_ROLES" },
  "security.sandbox": { schema: z.enum(["required", "off"]), env: "CODERCLAW_SANDBOX" },
  "deployment.mode": { schema: modeSchema },
  "deployment.allowRemoteSessions": { schema: z.boolean(), env: "CODERCLAW_ALLOW_REMOTE_SESSIONS" },
  "deployment.maxConcurrentTasks": { schema: z.number().int().min(1).max(10_000), env: "CODERCLAW_MAX_CONCURRENT_TASKS" },
  "deployment.maxOutputBytes": { schema: z.number().int().min(1024).max(MAX_OUTPUT_LIMIT), env: "CODERCLAW_MAX_OUTPUT_BYTES" },
  relay: { schema: z.union([z.boolean(), z.literal("auto")], { error: "must be true, false or auto" }), env: "CODERCLAW_RELAY" },
  upnp: { schema: z.boolean(), env: "CODERCLAW_UPNP" },
  labels: { schema: z.array(RequirementNameSchema).max(MAX_REQUIREMENTS), env: "CODERCLAW_LABELS" },
  resources: {
    schema: z
      .record(RequirementNameSchema, z.number().min(0, "must be at least 0"))
      .refine((r) => Object.keys(r).length <= MAX_REQUIREMENTS, `at most ${MAX_REQUIREMENTS} resources`),
  },
  "code.agents": { schema: z.array(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,63}$/, "must be an agent id")).max(256), env: "CODERCLAW_CODE_AGENTS" },
  "code.maxTreeBytes": { schema: z.number().int().min(1).max(64 * 1024 ** 4), env: "CODERCLAW_CODE_MAX_TREE_BYTES" },
  "code.keepBytes": { schema: z.number().int().min(0).max(64 * 1024 ** 4), env: "CODERCLAW_CODE_KEEP_BYTES" },
  "http.host": { schema: z.string().min(1).max(255).regex(/^[A-Za-z0-9.:-]+$/, "must be a host name or IP address"), env: "CODERCLAW_HTTP_HOST" },
  "http.port": { schema: z.number().int().min(0).max(65_535), env: "CODERCLAW_HTTP_PORT" },
  "http.tls.cert": { schema: z.string().min(1).max(4096), env: "CODERCLAW_HTTP_TLS_CERT" },
  "http.tls.key": { schema: z.string().min(1).max(4096), env: "CODERCLAW_HTTP_TLS_KEY" },
  "http.bodyLimit": { schema: z.number().int().min(1024).max(64 * 1024 * 1024), env: "CODERCLAW_HTTP_BODY_LIMIT" },
  "http.allowedHosts": { schema: z.array(z.string().regex(/^(?:[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:]{2,39}\])$/, "must be a host name, or an IPv6 address in brackets, without a port")).max(64), env: "CODERCLAW_HTTP_ALLOWED_HOSTS" },
  "auth.oidc": { schema: OidcSchema },
  "auth.github": { schema: GitHubSchema },
} as const satisfies Record<string, { schema: z.ZodType; env?: string }>;

type SettingKey = keyof typeof SETTINGS;
const KEYS = Object.keys(SETTINGS) as SettingKey[];

/** Environment variables that override the file, by the setting they set. Documented in docs/http-api.md. */
export const RUNTIME_CONFIG_ENV: Readonly<Record<string, string>> = Object.fromEntries(
  KEYS.flatMap((key) => {
    const env = (SETTINGS[key] as { env?: string }).env;
    return env === undefined ? [] : [[env, key]];
  }),
);

const DEFAULTS: Partial<Record<SettingKey, unknown>> = {
  mode: "local-only",
  "transport.type": "local",
  "transport.enabled": true,
  "security.enforceTrust": false,
  "security.requireAuth": false,
  "security.defaultRoles": ["developer"],
  "security.sandbox": "required",
  "deployment.maxConcurrentTasks": 10,
  "deployment.maxOutputBytes": 1024 * 1024,
  relay: false,
  upnp: false,
  labels: [],
  resources: {},
  "code.maxTreeBytes": 4 * 1024 ** 3,
  "http.host": "127.0.0.1",
  "http.port": 7420,
};

/** Builds the nested strict schema of the file from the flat table, so each key is defined once. */
function fileSchema(): z.ZodType {
  type Tree = { [k: string]: Tree | z.ZodType };
  const tree: Tree = {};
  for (const key of KEYS) {
    const parts = key.split(".");
    let node = tree;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Tree;
    node[parts[parts.length - 1] as string] = SETTINGS[key].schema;
  }
  const build = (node: Tree): z.ZodType =>
    z
      .strictObject(
        Object.fromEntries(Object.entries(node).map(([k, v]) => [k, (v instanceof z.ZodType ? v : build(v)).optional()])),
      )
      .nullable();
  const root = build(tree) as z.ZodNullable<z.ZodObject>;
  // agents and llm are the agents configuration's sections; it validates them.
  return root.unwrap().extend({ agents: z.unknown().optional(), llm: z.unknown().optional() }).nullable();
}

const FILE_SCHEMA = fileSchema();

function getPath(value: unknown, key: string): unknown {
  let node = value;
  for (const part of key.split(".")) {
    if (node === null || typeof node !== "object") return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return node;
}

function parseEnvValue(key: SettingKey, raw: string): unknown {
  const schema = SETTINGS[key].schema;
  if (schema instanceof z.ZodBoolean || key === "relay") {
    const v = raw.trim().toLowerCase();
    if (["1", "true", "yes", "on"].includes(v)) return true;
    if (["0", "false", "no", "off"].includes(v)) return false;
    return raw;
  }
  if (schema instanceof z.ZodNumber) return raw.trim() === "" ? raw : Number(raw);
  if (schema instanceof z.ZodArray) return raw.split(",").map((s) => s.trim()).filter((s) => s !== "");
  return raw;
}

/**
 * The runtime.yaml that applies, as git finds its repository: the nearest
 * `.coderClaw/runtime.yaml` in `cwd` or a parent directory, else the one in the
 * CoderClaw home (`home` when given, as `--home` gives it, else
 * `$CODERCLAW_HOME`, else `~/.coderclaw`). A project's file wins over the home's.
 */
export function findRuntimeConfigFile(cwd: string, env: Readonly<Record<string, string | undefined>>, home?: string): string | undefined {
  for (let dir = resolve(cwd); ; dir = dirname(dir)) {
    const file = join(dir, RUNTIME_CONFIG_PATH);
    if (existsSync(file)) return file;
    if (dirname(dir) === dir) break;
  }
  const file = join(home ?? env["CODERCLAW_HOME"] ?? join(homedir(), ".coderclaw"), RUNTIME_CONFIG_PATH);
  return existsSync(file) ? file : undefined;
}

function readConfigFile(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, 1, "", `cannot be read: ${(err as Error).message}`);
  }
}

/**
 * Loads the effective runtime configuration: defaults, then the file, then
 * environment variables (`CODERCLAW_HTTP_PORT`, `CODERCLAW_MAX_CONCURRENT_TASKS`,
 * ... see {@link RUNTIME_CONFIG_ENV}), then `overrides` from flags. Throws
 * {@link ConfigError} naming file, line and key for a bad file, and a CONFIG
 * CoderClawError naming the variable or flag for a bad override.
 */
export function loadRuntimeConfig(options: LoadRuntimeConfigOptions = {}): LoadedRuntimeConfig {
  const cwd = options.cwd ?? process.cwd();
  const env = options.env ?? process.env;
  const values = new Map<SettingKey, unknown>();
  const sources: Record<string, ConfigSource> = {};
  for (const key of KEYS) {
    if (DEFAULTS[key] !== undefined) {
      values.set(key, DEFAULTS[key]);
      sources[key] = "default";
    }
  }

  const file = options.file ?? findRuntimeConfigFile(cwd, env, options.home);
  let source: YamlSource | undefined;
  if (file !== undefined) {
    source = parseYamlSource(readConfigFile(file), file, { maxBytes: MAX_RUNTIME_CONFIG_BYTES });
    const data = validateYaml(source, FILE_SCHEMA);
    for (const key of KEYS) {
      const value = getPath(data, key);
      if (value === undefined) continue;
      values.set(key, value);
      sources[key] = `file:${file}:${locate(source, key.split(".")).line}`;
    }
  }

  for (const key of KEYS) {
    const name = (SETTINGS[key] as { env?: string }).env;
    const raw = name === undefined ? undefined : env[name];
    if (name === undefined || raw === undefined) continue;
    const parsed = SETTINGS[key].schema.safeParse(parseEnvValue(key, raw));
    if (!parsed.success) {
      throw new CoderClawError("CONFIG", `environment ${name}=${JSON.stringify(raw)}: ${key}: ${parsed.error.issues[0]?.message ?? "invalid"}`, { field: key });
    }
    values.set(key, parsed.data);
    sources[key] = `env:${name}`;
  }

  for (const key of KEYS) {
    const value = getPath(options.overrides, key);
    if (value === undefined) continue;
    const parsed = SETTINGS[key].schema.safeParse(value);
    if (!parsed.success) {
      throw new CoderClawError("CONFIG", `flag ${key}: ${parsed.error.issues[0]?.message ?? "invalid"}`, { field: key });
    }
    values.set(key, parsed.data);
    sources[key] = "flag";
  }

  const fail = (key: SettingKey, message: string): never => {
    const origin = sources[key];
    if (source !== undefined && origin?.startsWith("file:") === true) throw configErrorAt(source, key.split("."), message);
    throw new CoderClawError("CONFIG", `${origin === undefined || origin === "default" ? "" : `${origin}: `}${key}: ${message}`, { field: key });
  };

  const mode = values.get("mode") as RuntimeMode;
  if (!values.has("deployment.mode")) {
    values.set("deployment.mode", mode);
    sources["deployment.mode"] = sources["mode"] ?? "default";
  } else if (values.get("deployment.mode") !== mode) {
    fail("deployment.mode", `must match mode (${mode}), or be left out`);
  }
  if (!values.has("deployment.allowRemoteSessions")) {
    values.set("deployment.allowRemoteSessions", mode !== "local-only");
    sources["deployment.allowRemoteSessions"] = "default";
  }
  if (values.get("transport.type") === "http" && !values.has("transport.baseUrl")) {
    fail("transport.type", "http needs transport.baseUrl (or CODERCLAW_SERVER)");
  }
  const hasCert = values.has("http.tls.cert");
  if (hasCert !== values.has("http.tls.key")) fail(hasCert ? "http.tls.cert" : "http.tls.key", "http.tls needs both cert and key");

  const base = file === undefined ? cwd : dirname(file);
  const pathOf = (key: SettingKey): string => {
    const p = values.get(key) as string;
    // A relative path in the file means relative to the file; from env or flags, to the working directory.
    return isAbsolute(p) ? p : resolve(sources[key]?.startsWith("file:") === true ? base : cwd, p);
  };

  const get = <T>(key: SettingKey): T => values.get(key) as T;
  const config: RuntimeConfig = {
    mode,
    transport: {
      type: get("transport.type"),
      enabled: get("transport.enabled"),
      ...(values.has("transport.baseUrl") ? { baseUrl: get<string>("transport.baseUrl") } : {}),
    },
    security: {
      enforceTrust: get("security.enforceTrust"),
      requireAuth: get("security.requireAuth"),
      defaultRoles: get("security.defaultRoles"),
      sandbox: get("security.sandbox"),
    },
    deployment: {
      mode: get("deployment.mode"),
      allowRemoteSessions: get("deployment.allowRemoteSessions"),
      maxConcurrentTasks: get("deployment.maxConcurrentTasks"),
      maxOutputBytes: get("deployment.maxOutputBytes"),
    },
    relay: get("relay"),
    upnp: get("upnp"),
    labels: get("labels"),
    resources: get("resources"),
    code: {
      ...(values.has("code.agents") ? { agents: get<string[]>("code.agents") } : {}),
      maxTreeBytes: get("code.maxTreeBytes"),
      ...(values.has("code.keepBytes") ? { keepBytes: get<number>("code.keepBytes") } : {}),
    },
    http: {
      host: get("http.host"),
      port: get("http.port"),
      ...(hasCert ? { tls: { cert: pathOf("http.tls.cert"), key: pathOf("http.tls.key") } } : {}),
      ...(values.has("http.bodyLimit") ? { bodyLimit: get<number>("http.bodyLimit") } : {}),
      ...(values.has("http.allowedHosts") ? { allowedHosts: get<string[]>("http.allowedHosts") } : {}),
    },
    auth: {
      ...(values.has("auth.oidc") ? { oidc: get<z.infer<typeof OidcSchema>>("auth.oidc") } : {}),
      ...(values.has("auth.github") ? { github: get<z.infer<typeof GitHubSchema>>("auth.github") } : {}),
    },
  };

  const warnings: string[] = [];
  if (mode !== "local-only" && !isLoopbackHost(config.http.host) && config.http.tls === undefined) {
    warnings.push(`http.host ${config.http.host} is reachable from other machines without TLS: bearer tokens would cross the network in clear text`);
  }
  if (mode !== "local-only" && !config.security.requireAuth) {
    warnings.push("security.requireAuth is false: the HTTP API authenticates every request anyway; local callers are not checked");
  }
  if (mode === "local-only" && config.deployment.allowRemoteSessions) {
    warnings.push("deployment.allowRemoteSessions has no effect in local-only mode");
  }

  return { config, sources, ...(file === undefined ? {} : { file }), warnings };
}

/** Result of {@link checkRuntimeConfig}. */
export type RuntimeConfigCheck =
  | { ok: true; file: string; config: RuntimeConfig; warnings: string[] }
  | { ok: false; file: string; error: CoderClawError };

/**
 * Validates one runtime.yaml as `coderclaw config check` does: every section,
 * including the agents', with the error naming file, line and key. Environment
 * and flags are ignored: this judges the file alone.
 */
export function checkRuntimeConfig(path: string): RuntimeConfigCheck {
  const file = resolve(path);
  try {
    if (!existsSync(file)) throw new ConfigError(file, 1, "", "file not found");
    const loaded = loadRuntimeConfig({ file, env: {}, cwd: dirname(file) });
    parseAgentsConfig(readConfigFile(file), { path: file, kind: "runtime" });
    return { ok: true, file, config: loaded.config, warnings: loaded.warnings };
  } catch (err) {
    if (err instanceof CoderClawError) return { ok: false, file, error: err };
    throw err;
  }
}

/**
 * Human form of `coderclaw config show`: one `key = value  (source)` line per
 * setting, sorted by key. The JSON form is the {@link LoadedRuntimeConfig} itself.
 */
export function formatRuntimeConfig(loaded: LoadedRuntimeConfig): string {
  const rows = Object.entries(loaded.sources)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, origin]) => [`${key} = ${JSON.stringify(getPath(loaded.config, key))}`, origin] as const);
  const width = Math.max(0, ...rows.map(([left]) => left.length));
  const lines = rows.map(([left, origin]) => `${left.padEnd(width)}  (${origin})`);
  const header = `# ${loaded.file ?? "no runtime.yaml found; defaults apply"}`;
  return [header, ...lines, ...loaded.warnings.map((w) => `# warning: ${w}`)].join("\n");
}
