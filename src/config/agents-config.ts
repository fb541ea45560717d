import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { z } from "zod";
import type { EnvGrant } from "../agents/env.js";
import { ConfigError, configErrorAt, locate, parseYamlSource, validateYaml, type YamlSource } from "./yaml-source.js";

/** Largest agents configuration file read: 1 MiB. */
export const MAX_CONFIG_BYTES = 1024 * 1024;
/** Longest timeout a command agent may declare: 24 hours. */
export const MAX_AGENT_TIMEOUT_MS = 24 * 60 * 60 * 1000;
/** Placeholders a command agent's arguments may use. */
export const PLACEHOLDERS = ["input", "description"] as const;
/** One of {@link PLACEHOLDERS}. */
export type Placeholder = (typeof PLACEHOLDERS)[number];

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;
const AGENT_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const DURATION = /^(\d{1,9})(ms|s|m|h)$/;
const UNIT_MS = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 } as const;

const text = (max: number) => z.string().min(1).max(max);

const timeoutSchema = z
  .union([z.number().positive(), z.string().regex(DURATION, "must be a number of seconds or a duration like 90s, 10m, 1h, 500ms")])
  .transform((value, ctx) => {
    let ms: number;
    if (typeof value === "number") ms = Math.round(value * 1000);
    else {
      const match = DURATION.exec(value);
      ms = Number(match?.[1]) * UNIT_MS[(match?.[2] ?? "s") as keyof typeof UNIT_MS];
    }
    if (ms < 1 || ms > MAX_AGENT_TIMEOUT_MS) {
      ctx.addIssue({ code: "custom", message: `must be between 1 ms and ${MAX_AGENT_TIMEOUT_MS / 3_600_000} h` });
      return z.NEVER;
    }
    return ms;
  });

const envSchema = z.union([
  z.array(z.string().regex(ENV_NAME, "must be an environment variable name")).max(64),
  z.record(z.string().regex(ENV_NAME, "must be an environment variable name"), z.string().max(4096)),
]);

const commandAgentSchema = z
  .object({
    id: z.string().regex(AGENT_ID, "must be 1-64 letters, digits, '.', '_' or '-'"),
    name: text(128),
    description: text(1024),
    capabilities: z.array(text(64)).min(1).max(32),
    /** Skills the agent uses (e.g. `shell-exec` for a coding agent that runs commands): authorised before each task. */
    skills: z.array(text(64)).max(32).optional(),
    /** Placement labels a node must declare to run the agent (a published agent runs only where they are met). */
    labels: z.array(text(64)).max(32).optional(),
    command: z.array(z.string().max(4096)).min(1).max(64),
    input: z.enum(["stdin", "arg"]),
    env: envSchema.optional(),
    cwd: text(4096).optional(),
    timeout: timeoutSchema.optional(),
  })
  .strict();

const llmSchema = z
  .object({
    baseUrl: z.url({ protocol: /^https?$/ }).max(2048).optional(),
    model: text(256).optional(),
    apiKey: text(4096).optional(),
    apiKeyEnv: z.string().regex(ENV_NAME, "must be an environment variable name").optional(),
    probeTimeout: timeoutSchema.optional(),
  })
  .strict();

const runtimeFileSchema = z.looseObject({
  agents: z.array(z.unknown()).max(256).optional(),
  llm: llmSchema.optional(),
});
const teamFileSchema = z.object({ agents: z.array(z.unknown()).max(256).optional() }).strict();

/** Where a setting came from, for messages. */
export interface ConfigLocation {
  file: string;
  line: number;
  col: number;
  /** Path of the entry, e.g. `agents[2]`. */
  key: string;
}

/** A command agent as configured: validated, placeholders checked. */
export interface CommandAgentConfig {
  id: string;
  name: string;
  description: string;
  capabilities: string[];
  /** Skills the agent uses, each authorised before a task of it is accepted. */
  skills?: string[];
  /** Placement labels a node must declare to run it. */
  labels?: string[];
  /** Program and arguments; arguments may hold `{input}` and `{description}`. */
  command: [string, ...string[]];
  /** `arg`: the input goes where `{input}` stands; `stdin`: it is written to stdin. */
  input: "stdin" | "arg";
  /** Node variables passed through, and variables set, beyond the allowlist. */
  env: EnvGrant;
  /** Working directory: absolute, or relative to the task's workspace. */
  cwd?: string;
  timeoutMs?: number;
  source: ConfigLocation;
}

/** The LLM provider as configured in a file; the environment may override it. */
export interface LlmFileConfig {
  baseUrl?: string;
  model?: string;
  apiKey?: string;
  /** Name of the node variable holding the API key. */
  apiKeyEnv?: string;
  probeTimeoutMs?: number;
}

/** Everything the agents sections of the configuration files declare. */
export interface AgentsConfig {
  agents: CommandAgentConfig[];
  llm?: LlmFileConfig;
}

/** One configuration file to read. */
export interface AgentsConfigFile {
  path: string;
  /**
   * `runtime`: `.coderClaw/runtime.yaml`, whose other top-level sections belong
   * to other parts of the node; `team`: `team-agents.yaml`, with `agents:` only.
   */
  kind: "runtime" | "team";
}

/**
 * Split an argument into literal text and placeholders. `{{` and `}}` stand for
 * literal braces. Returns the name of the first unknown placeholder, if any.
 */
export function unknownPlaceholder(arg: string): string | undefined {
  for (const match of arg.replace(/\{\{|\}\}/g, "").matchAll(/\{([^{}]*)\}/g)) {
    const name = match[1] ?? "";
    if (!(PLACEHOLDERS as readonly string[]).includes(name)) return name;
  }
  return undefined;
}

/** Replace `{input}` and `{description}` in `arg`; `{{` and `}}` become literal braces. */
export function substitute(arg: string, values: Readonly<Record<Placeholder, string>>): string {
  return arg.replace(/\{\{|\}\}|\{(input|description)\}/g, (whole, name: Placeholder | undefined) => {
    if (name === undefined) return whole[0] ?? "";
    return values[name];
  });
}

/**
 * Programs that run one of their arguments as code, by their name, and the
 * options the code follows (`sh -c CODE`, `bash -lc CODE`, `python3 -c CODE`,
 * `node -e CODE`): a placeholder inside that code would make a task's input
 * (a member's or a workflow step's words) code of the agent.
 */
const CODE_ARGUMENTS: ReadonlyArray<{ program: RegExp; option: RegExp }> = [
  { program: /^(sh|bash|dash|zsh|ksh|mksh|ash|busybox|fish|pwsh|powershell)$/, option: /^(-[A-Za-z]*c[A-Za-z]*|-Command|-command)$/ },
  { program: /^python[0-9.]*$/, option: /^-[A-Za-z]*c$/ },
  { program: /^(node|nodejs|deno|bun)$/, option: /^(-e|--eval|-p|--print|eval)$/ },
  { program: /^(perl|ruby)$/, option: /^-[A-Za-z]*[eE]$/ },
  { program: /^(php)$/, option: /^-r$/ },
  { program: /^(lua[0-9.]*|luajit|Rscript|osascript|tclsh|expect)$/, option: /^(-e|-c)$/ },
];

/** awk and its kin run their first operand as their program (unless -f names a file). */
const AWK = /^(awk|gawk|mawk|nawk|busybox)$/;
/** Options of awk whose value is the next argument. */
const AWK_VALUE_OPTIONS = new Set(["-v", "-F", "-f"]);
/** Options of ssh whose value is the next argument: every argument after the destination is a command the remote shell runs. */
const SSH_VALUE_OPTIONS = /^-[BbcDEeFIiJLlmOopQRSWw]$/;

/** Whether `arg` holds the placeholder `{name}`, or any placeholder when `name` is not given (`{{input}}` is literal text, and holds none). */
export function holdsPlaceholder(arg: string, name?: Placeholder): boolean {
  return substitute(arg, { input: name === "description" ? "" : "\0", description: name === "input" ? "" : "\0" }).includes("\0");
}

/**
 * The index in `args` of an argument some program of the command runs as
 * code, if it holds a placeholder. Any argument naming an interpreter counts,
 * not only the program: a wrapper (`env`, `timeout 60`, `nice`, `sudo`,
 * `xargs`, `find -exec`) runs the interpreter named in its arguments.
 */
function placeholderInCode(program: string, args: readonly string[]): { at: number; what: string } | undefined {
  const names = [program, ...args].map((a) => basename(a));
  for (let p = 0; p < names.length; p++) {
    // The arguments of the program at `p` of the command: index i of them is index p + i of `args`.
    const rest = args.slice(p);
    const rule = CODE_ARGUMENTS.find((r) => r.program.test(names[p]!));
    if (rule !== undefined) {
      const at = rest.findIndex((arg, i) => i > 0 && rule.option.test(rest[i - 1]!) && holdsPlaceholder(arg));
      if (at >= 0) return { at: p + at, what: `the code of ${names[p]} ${rest[at - 1]}` };
    }
    if (AWK.test(names[p]!) && !(names[p] === "busybox" && rest[0] !== "awk")) {
      const operands = names[p] === "busybox" ? rest.slice(1) : rest;
      const shift = rest.length - operands.length;
      if (operands.includes("-f")) continue;
      const at = operands.findIndex((arg, i) => !arg.startsWith("-") && !AWK_VALUE_OPTIONS.has(operands[i - 1] ?? ""));
      if (at >= 0 && holdsPlaceholder(operands[at]!)) return { at: p + shift + at, what: `the program of ${names[p]}` };
    }
    if (names[p] === "ssh") {
      const destination = rest.findIndex((arg, i) => !arg.startsWith("-") && !SSH_VALUE_OPTIONS.test(rest[i - 1] ?? ""));
      const at = destination < 0 ? -1 : rest.findIndex((arg, i) => i > destination && holdsPlaceholder(arg));
      if (at >= 0) return { at: p + at, what: "the command ssh has the remote shell run" };
    }
  }
  return undefined;
}

function commandAgent(source: YamlSource, index: number, raw: unknown): CommandAgentConfig {
  const path = ["agents", index];
  const parsed = commandAgentSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const sub = issue?.path ?? [];
    if (issue?.code === "unrecognized_keys") throw configErrorAt(source, [...path, ...sub], "unknown key", issue.keys[0] ?? "");
    throw configErrorAt(source, [...path, ...sub], issue?.message ?? "invalid agent");
  }
  const agent = parsed.data;
  agent.command.forEach((arg, i) => {
    const bad = unknownPlaceholder(arg);
    if (bad !== undefined) {
      throw configErrorAt(source, [...path, "command", i], `unknown placeholder {${bad}} (known: ${PLACEHOLDERS.map((p) => `{${p}}`).join(", ")})`);
    }
  });
  const [program, ...args] = agent.command as [string, ...string[]];
  if (program.length === 0 || unknownPlaceholder(program) !== undefined || program !== substitute(program, { input: "", description: "" })) {
    throw configErrorAt(source, [...path, "command", 0], "the program must be a plain name or path, without placeholders");
  }
  // A relative path would be looked up from the node's directory when checking
  // availability but from the task's workspace when running: refuse the ambiguity.
  if (program.includes("/") && !program.startsWith("/")) {
    throw configErrorAt(source, [...path, "command", 0], "the program must be a name looked up on PATH or an absolute path");
  }
  const code = placeholderInCode(program, args);
  if (code !== undefined) {
    throw configErrorAt(source, [...path, "command", code.at + 1], `a placeholder in ${code.what} would run a task's input as that code: pass it as an argument of its own ([sh, -c, 'tool "$1"', sh, '{input}']) or use input: stdin`);
  }
  if (agent.input === "arg" && !args.some((arg) => holdsPlaceholder(arg, "input"))) {
    throw configErrorAt(source, [...path, "command"], "input: arg needs an {input} placeholder in the arguments");
  }
  const env: EnvGrant = agent.env === undefined ? {} : Array.isArray(agent.env) ? { pass: agent.env } : { set: agent.env };
  const where = locate(source, path);
  return {
    id: agent.id,
    name: agent.name,
    description: agent.description,
    capabilities: agent.capabilities,
    skills: agent.skills ?? [],
    ...(agent.labels !== undefined && { labels: agent.labels }),
    command: [program, ...args],
    input: agent.input,
    env,
    ...(agent.cwd === undefined ? {} : { cwd: agent.cwd }),
    ...(agent.timeout === undefined ? {} : { timeoutMs: agent.timeout }),
    source: { file: source.file, line: where.line, col: where.col, key: `agents[${index}]` },
  };
}

/** Parse one configuration file's text. */
export function parseAgentsConfig(text: string, file: AgentsConfigFile): AgentsConfig {
  const source = parseYamlSource(text, file.path, { maxBytes: MAX_CONFIG_BYTES });
  if (source.doc.contents === null) return { agents: [] };
  let rawAgents: unknown[] | undefined;
  let llm: z.output<typeof llmSchema> | undefined;
  if (file.kind === "runtime") ({ agents: rawAgents, llm } = validateYaml(source, runtimeFileSchema));
  else ({ agents: rawAgents } = validateYaml(source, teamFileSchema));
  const agents = (rawAgents ?? []).map((raw, i) => commandAgent(source, i, raw));
  if (llm === undefined) return { agents };
  const { probeTimeout, ...rest } = llm;
  return { agents, llm: { ...rest, ...(probeTimeout === undefined ? {} : { probeTimeoutMs: probeTimeout }) } };
}

/**
 * Read the agents sections of the given files, in order; a missing file is
 * skipped. Ids must be unique across files; a later `llm:` section replaces an
 * earlier one. Throws {@link ConfigError} naming file, line and key.
 */
export function loadAgentsConfig(files: readonly AgentsConfigFile[]): AgentsConfig {
  const agents: CommandAgentConfig[] = [];
  let llm: LlmFileConfig | undefined;
  for (const file of files) {
    let text: string;
    try {
      text = readFileSync(file.path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") continue;
      throw new ConfigError(file.path, 1, "", `cannot be read: ${(err as Error).message}`);
    }
    const parsed = parseAgentsConfig(text, file);
    for (const agent of parsed.agents) {
      const earlier = agents.find((a) => a.id === agent.id);
      if (earlier !== undefined) {
        throw new ConfigError(agent.source.file, agent.source.line, `${agent.source.key}.id`, `agent id '${agent.id}' is already declared at ${earlier.source.file}:${earlier.source.line}`, agent.source.col);
      }
      agents.push(agent);
    }
    if (parsed.llm !== undefined) llm = parsed.llm;
  }
  return llm === undefined ? { agents } : { agents, llm };
}
