import { LineCounter, isMap, isNode, isPair, isScalar, parseDocument, type Document } from "yaml";
import type { z } from "zod";
import { CoderClawError } from "../contract/errors.js";

/** A configuration file was refused; the message starts with `file:line:column`. */
export class ConfigError extends CoderClawError {
  readonly file: string;
  readonly line: number;
  /** Dotted path of the offending key, e.g. `agents[2].command[1]`; empty for the whole file. */
  readonly key: string;
  /** Further problems found in the same file, for `coderclaw config check` to list them all. */
  readonly others: ConfigError[] = [];

  constructor(file: string, line: number, key: string, message: string, column = 1) {
    super("CONFIG", `${file}:${line}:${column}: ${key.length > 0 ? `${key}: ` : ""}${message}`, key.length > 0 ? { field: key } : undefined);
    this.file = file;
    this.line = line;
    this.key = key;
  }
}

/** A YAML document kept with what it takes to point at its lines. */
export interface YamlSource {
  file: string;
  doc: Document.Parsed;
  lines: LineCounter;
  /** Added to every line number: where the YAML starts inside a larger file (frontmatter). */
  lineOffset: number;
}

/** Dotted path of a key as users read it: `agents[0].command[2]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out.length === 0 ? String(part) : `.${String(part)}`;
  }
  return out;
}

/**
 * Parse YAML text, refusing anything over `maxBytes`, syntax errors, duplicate
 * keys and alias bombs, with errors naming file and line.
 */
export function parseYamlSource(text: string, file: string, options: { maxBytes: number; lineOffset?: number }): YamlSource {
  const lineOffset = options.lineOffset ?? 0;
  const size = Buffer.byteLength(text);
  if (size > options.maxBytes) throw new ConfigError(file, 1 + lineOffset, "", `file is ${size} bytes, over the limit of ${options.maxBytes}`);
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const first = doc.errors[0];
  if (first !== undefined) {
    const pos = lines.linePos(first.pos[0]);
    throw new ConfigError(file, pos.line + lineOffset, "", `invalid YAML: ${first.message.split("\n")[0] ?? first.code}`, pos.col);
  }
  return { file, doc, lines, lineOffset };
}

/** Line and column of the node at `path`, or of its nearest existing ancestor. */
export function locate(source: YamlSource, path: readonly PropertyKey[], key?: string): { line: number; col: number } {
  for (let depth = path.length; depth >= 0; depth--) {
    const node: unknown = depth === 0 ? source.doc.contents : source.doc.getIn(path.slice(0, depth), true);
    if (!isNode(node)) continue;
    let offset = node.range?.[0];
    if (key !== undefined && depth === path.length && isMap(node)) {
      const pair = node.items.find((item) => isPair(item) && isScalar(item.key) && item.key.value === key);
      if (pair !== undefined && isScalar(pair.key) && pair.key.range !== undefined && pair.key.range !== null) offset = pair.key.range[0];
    }
    if (offset === undefined) continue;
    const pos = source.lines.linePos(offset);
    return { line: pos.line + source.lineOffset, col: pos.col };
  }
  return { line: 1 + source.lineOffset, col: 1 };
}

/** A ConfigError pointing at `path` in `source`. */
export function configErrorAt(source: YamlSource, path: readonly PropertyKey[], message: string, key?: string): ConfigError {
  const where = locate(source, path, key);
  const fullPath = key === undefined ? path : [...path, key];
  return new ConfigError(source.file, where.line, formatPath(fullPath), message, where.col);
}

/**
 * Validate the document against `schema`; the first issue becomes a
 * ConfigError naming file, line and key.
 */
export function validateYaml<S extends z.ZodType>(source: YamlSource, schema: S): z.output<S> {
  // maxAliasCount bounds the expansion of YAML aliases ("billion laughs").
  let value: unknown;
  try {
    value = source.doc.toJS({ maxAliasCount: 100 });
  } catch (err) {
    throw new ConfigError(source.file, 1 + source.lineOffset, "", `cannot be read: ${err instanceof Error ? err.message : String(err)}`);
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const [first, ...rest] = result.error.issues.flatMap((issue) =>
    issue.code === "unrecognized_keys" ? issue.keys.map((key) => configErrorAt(source, issue.path, "unknown key", key)) : [configErrorAt(source, issue.path, issue.message)],
  );
  if (first === undefined) throw new ConfigError(source.file, 1 + source.lineOffset, "", "invalid configuration");
  first.others.push(...rest);
  throw first;
}
