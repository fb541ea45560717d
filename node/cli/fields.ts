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
 * Refuse `fields` of which no row has one: an always-empty column is almost
 * surely a typo. Says which fields the rows have.
 */
export function checkFieldsPresent(rows: readonly unknown[], fields: readonly string[]): void {
  if (rows.length === 0) return;
  const missing = fields.filter((f) => !rows.some((r) => lookup(r, f).found));
  if (missing.length > 0) throw new CoderClawError("INVALID_INPUT", `--fields: no row has ${missing.map((m) => JSON.stringify(m)).join(", ")}; fields: ${topLevelKeys(rows).join(", ")}`, { field: "fields" });
}

/** `fields` of `row` as an object, in the order asked; a field the row lacks is null. */
export function pickFields(row: unknown, fields: readonly string[]): Record<string, unknown> {
  return Object.fromEntries(fields.map((f) => [f, lookup(row, f).value ?? null]));
}

/** `fields` of `row` as one tab-separated line, a field it lacks empty. */
export function fieldsLine(row: unknown, fields: readonly string[]): string {
  return fields.map((f) => cell(lookup(row, f).value)).join("\t");
}

/** Print only `fields` of each row (see {@link checkFieldsPresent}). */
export function printFields(rows: readonly unknown[], fields: readonly string[], json: boolean): void {
  checkFieldsPresent(rows, fields);
  if (json) {
    printJson(rows.map((r) => pickFields(r, fields)));
    return;
  }
  for (const r of rows) process.stdout.write(fieldsLine(r, fields) + "\n");
}
