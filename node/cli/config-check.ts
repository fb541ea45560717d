import { existsSync, readFileSync, statSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { loadAgentRegistry } from "../../src/agents/index.js";
import { checkRuntimeConfig, findRuntimeConfigFile } from "../../src/config/runtime-config.js";
import { ConfigError } from "../../src/config/yaml-source.js";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseRepoPolicy, parseTeamPolicy } from "../../src/security/policy-file.js";

/** Largest policy file read by the check, as the node reads it. */
const MAX_POLICY_BYTES = 256 * 1024;

/** One problem of one file. */
export interface ConfigProblem {
  file: string;
  message: string;
}

/** What `coderclaw config check` found. */
export interface ConfigCheckReport {
  ok: boolean;
  /** The files judged, in the order start reads them. */
  files: string[];
  problems: ConfigProblem[];
  warnings: string[];
}

type FileKind = "runtime" | "team-agents" | "security" | "team-policy";

function kindOf(file: string): FileKind {
  switch (basename(file)) {
    case "security.yaml":
      return "security";
    case "team-policy.yaml":
      return "team-policy";
    case "team-agents.yaml":
      return "team-agents";
    default:
      return "runtime";
  }
}

function problemsOf(err: unknown, file: string): ConfigProblem[] {
  if (err instanceof ConfigError) return [err, ...err.others].map((e) => ({ file: e.file, message: e.message }));
  if (err instanceof CoderClawError) return [{ file, message: err.message }];
  throw err;
}

function checkPolicy(file: string, kind: "security" | "team-policy"): ConfigProblem[] {
  try {
    if (statSync(file).size > MAX_POLICY_BYTES) return [{ file, message: `${file}: larger than ${MAX_POLICY_BYTES} bytes` }];
    const text = readFileSync(file, "utf8");
    if (kind === "security") parseRepoPolicy(text, file);
    else parseTeamPolicy(text, file);
    return [];
  } catch (err) {
    if (err instanceof CoderClawError) return problemsOf(err, file);
    return [{ file, message: `${file}: cannot be read: ${(err as Error).message}` }];
  }
}

/**
 * Judges the configuration as `coderclaw start` would read it, reporting every
 * problem of every file instead of stopping at the first: the runtime.yaml (the
 * named one, else the nearest from `cwd` up, else the home's), the
 * team-agents.yaml beside it, the agents they declare as the node would build
 * them (an id a built-in takes is refused), and the policy files of
 * `<cwd>/.coderClaw`. A named file is judged by its kind (from its name) alone.
 */
export function checkConfiguration(options: { cwd: string; home: string; file?: string }): ConfigCheckReport {
  const problems: ConfigProblem[] = [];
  const warnings: string[] = [];
  const files: string[] = [];
  const named = options.file === undefined ? undefined : resolve(options.file);
  if (named !== undefined && !existsSync(named)) return { ok: false, files: [named], problems: [{ file: named, message: `${named}: file not found` }], warnings };
  const kind = named === undefined ? undefined : kindOf(named);
  if (kind === "security" || kind === "team-policy") {
    const policyProblems = checkPolicy(named!, kind);
    return { ok: policyProblems.length === 0, files: [named!], problems: policyProblems, warnings };
  }

  const runtime = kind === "runtime" ? named : findRuntimeConfigFile(options.cwd, process.env, options.home);
  const seen = new Set<string>();
  const add = (list: ConfigProblem[]): void => {
    for (const p of list) {
      if (seen.has(p.message)) continue;
      seen.add(p.message);
      problems.push(p);
    }
  };
  if (runtime !== undefined) {
    files.push(runtime);
    const r = checkRuntimeConfig(runtime);
    if (r.ok) warnings.push(...r.warnings);
    else add(problemsOf(r.error, runtime));
  }
  const agentFiles =
    kind === "team-agents" ? [{ path: named!, kind: "team" as const }] : runtime === undefined ? [] : [{ path: runtime, kind: "runtime" as const }, { path: join(dirname(runtime), "team-agents.yaml"), kind: "team" as const }];
  if (kind === "team-agents") files.push(named!);
  else if (agentFiles[1] !== undefined && existsSync(agentFiles[1].path)) files.push(agentFiles[1].path);
  if (agentFiles.length > 0) {
    try {
      loadAgentRegistry({ dataDir: options.home, workspaceDir: options.cwd, configFiles: agentFiles });
    } catch (err) {
      add(problemsOf(err, agentFiles[0]!.path));
    }
  }
  if (named === undefined) {
    for (const [name, policyKind] of [["security.yaml", "security"], ["team-policy.yaml", "team-policy"]] as const) {
      const file = join(options.cwd, ".coderClaw", name);
      if (!existsSync(file)) continue;
      files.push(file);
      add(checkPolicy(file, policyKind));
    }
  }
  return { ok: problems.length === 0, files, problems, warnings };
}
