import { readFile } from "node:fs/promises";
import { isMap, isNode, LineCounter, parseDocument, type Document } from "yaml";
import type { z } from "zod";
import { CoderClawError } from "../contract/errors.js";
import { repoPolicySchema, teamPolicySchema, type RepoPolicy, type TeamPolicy } from "./policy-schema.js";

/** A policy file that cannot be used; start-up must stop. */
export class PolicyFileError extends CoderClawError {
  readonly file: string;
  readonly line: number;
  readonly column: number;
  /** Dotted path of the offending key, empty for the document itself. */
  readonly key: string;

  constructor(file: string, line: number, column: number, key: string, problem: string) {
    super("CONFIG", `${file}:${line}:${column}: ${key === "" ? "" : `${key}: `}${problem}`, { field: key });
    this.file = file;
    this.line = line;
    this.column = column;
    this.key = key;
  }
}

/** Parses and validates repository policy text; `file` names it in errors. */
export function parseRepoPolicy(text: string, file = ".coderClaw/security.yaml"): RepoPolicy {
  return parsePolicy(text, file, repoPolicySchema);
}

/** Parses and validates organization policy text; `file` names it in errors. */
export function parseTeamPolicy(text: string, file = "team-policy.yaml"): TeamPolicy {
  return parsePolicy(text, file, teamPolicySchema);
}

/** Reads a repository policy; a missing file yields undefined, any other problem throws {@link PolicyFileError}. */
export async function loadRepoPolicy(path: string): Promise<RepoPolicy | undefined> {
  const text = await readOptional(path);
  return text === undefined ? undefined : parseRepoPolicy(text, path);
}

/** Reads an organization policy; a missing file yields undefined. */
export async function loadTeamPolicy(path: string): Promise<TeamPolicy | undefined> {
  const text = await readOptional(path);
  return text === undefined ? undefined : parseTeamPolicy(text, path);
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

function parsePolicy<S extends z.ZodType>(text: string, file: string, schema: S): z.output<S> {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, uniqueKeys: true, prettyErrors: false });
  const at = (offset: number) => lineCounter.linePos(offset);
  const yamlError = doc.errors[0];
  if (yamlError !== undefined) {
    const pos = at(yamlError.pos[0]);
    throw new PolicyFileError(file, pos.line, pos.col, "", yamlError.message.split("\n")[0] ?? "invalid YAML");
  }
  // An empty file is an empty policy, not `null`.
  const data: unknown = doc.contents === null ? {} : doc.toJS();
  const result = schema.safeParse(data);
  if (result.success) return result.data;

  const issue = result.error.issues[0];
  if (issue === undefined) throw new PolicyFileError(file, 1, 1, "", "invalid policy");
  const path = issue.path.map(String);
  let key = path.join(".");
  let offset = locate(doc, path);
  if (issue.code === "unrecognized_keys") {
    const unknownKey = issue.keys[0] ?? "";
    key = [...path, unknownKey].join(".");
    offset = locateKey(doc, path, unknownKey) ?? offset;
  }
  const pos = at(offset);
  throw new PolicyFileError(file, pos.line, pos.col, key, issue.message);
}

// The deepest existing node on the path, so a missing key points at its parent map.
function locate(doc: Document, path: readonly string[]): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? doc.contents : doc.getIn(path.slice(0, depth), true);
    if (isNode(node) && node.range) return node.range[0];
  }
  return 0;
}

function locateKey(doc: Document, path: readonly string[], key: string): number | undefined {
  const parent: unknown = path.length === 0 ? doc.contents : doc.getIn(path, true);
  if (!isMap(parent)) return undefined;
  for (const pair of parent.items) {
    const k: unknown = pair.key;
    if (isNode(k) && k.range && String((k as { value?: unknown }).value) === key) return k.range[0];
  }
  return undefined;
}
