import { Option } from "commander";
import { CoderClawError } from "../../src/contract/errors.js";
import { humanTime, printJson } from "./output.js";

const FIELD = /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)*$/;
const MAX_FIELDS = 32;

/** Parse `--fields a,b.c`: names, or dotted paths into nested objects. */
export function parseFields(spec: string): string[] {
  const fields = spec.split(",").map((f) => f.trim());
  if (fields.length > MAX_FIELDS) throw new CoderClawError("INVALID_INPUT", `--fields: at most ${MAX_FIELDS} fields, got ${fields.length}`, { field: "fields" });
  for (const f of fields) {
    if (f.length > 100 || !FIELD.test(f)) throw new CoderClawError("INVALID_INPUT", `--fields: ${JSON.stringify(f)} is not a field name (letters, digits, _; nested with .), e.g. --fields id,status`, { field: "fields" });
  }
  return fields;
}

/** The `--fields` option of a listing command. */
export function fieldsOption(): Option {
  return new Option("--fields <list>", "only these fields, comma-separated (dotted for nested ones): one tab-separated line per row, or JSON objects with --json").argParser(parseFields);
}

function lookup(row: unknown, path: string): { found: boolean; value: unknown } {
  let v: unknown = row;
  for (const key of path.split(".")) {
    if (v === null || typeof v !== "object" || !Object.hasOwn(v, key)) return { found: false, value: undefined };
    v = (v as Record<string, unknown>)[key];
  }
  return { found: true, value: v };
}

function topLevelKeys(rows: readonly unknown[]): string[] {
  const keys = new Set<string>();
  for (const r of rows) if (r !== null && typeof r === "object") for (const k of Object.keys(r)) keys.add(k);
  return [...keys].sort();
}

function cell(value: unknown): string {
  if (value === undefined || value === null) return "";
  if (value instanceof Date) return humanTime(value);
  if (Array.isArray(value)) return value.map(cell).join(",");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value).replace(/[\t\n]/g, " ");
}

/**
 * Print only `fields` of each row. A field that no row has is refused (with
 * the fields there are), since an always-empty column is almost surely a typo.
 */
export function printFields(rows: readonly unknown[], fields: readonly string[], json: boolean): void {
  if (rows.length > 0) {
    const missing = fields.filter((f) => !rows.some((r) => lookup(r, f).found));
    if (missing.length > 0) throw new CoderClawError("INVALID_INPUT", `--fields: no row has ${missing.map((m) => JSON.stringify(m)).join(", ")}; fields: ${topLevelKeys(rows).join(", ")}`, { field: "fields" });
  }
  if (json) {
    printJson(rows.map((r) => Object.fromEntries(fields.map((f) => [f, lookup(r, f).value ?? null]))));
    return;
  }
  for (const r of rows) process.stdout.write(fields.map((f) => cell(lookup(r, f).value)).join("\t") + "\n");
}
