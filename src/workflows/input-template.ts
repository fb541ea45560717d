import { InvalidInputError } from "../contract/errors.js";
import { ShellScanner, shellWord } from "./shell-input.js";

/** One piece of a step's input: text as written, or a value filled in when the step starts (`at`: where its reference starts in the source). */
export type InputPart = { text: string } | { input: string | null; at: number } | { step: string; field: "output"; at: number };

/** A step's input, parsed once when the workflow is checked. */
export interface InputTemplate {
  /** The input as written. */
  source: string;
  parts: InputPart[];
  /** Steps whose output it uses. */
  stepRefs: string[];
  /** The input is a POSIX shell command line: each value is filled in as one word (see {@link fillStepInput}). */
  shell: boolean;
}

/** What a step's input is filled in from. */
export interface InputValues {
  /** The workflow's input: the whole text, or named values. */
  input: string | Readonly<Record<string, string>>;
  /** Outputs of the steps that completed. */
  outputs: ReadonlyMap<string, string>;
}

const REFERENCE = /\$\{([^}]*)\}/g;
const NAME = "[A-Za-z0-9][A-Za-z0-9._-]*";
const INPUT_REF = new RegExp(`^input(?:\\.(${NAME}))?$`);
const STEP_REF = new RegExp(`^steps\\.(${NAME})\\.output$`);

/**
 * Parse a step's input: `${input}` (the workflow's input), `${input.NAME}` (one
 * named value of it), `${steps.ID.output}` (a completed step's output), and `$${`
 * for a literal `${`. Anything else inside `${...}` is refused, naming `field`.
 *
 * With `shell`, the input is a command line, and a reference must stand where a
 * word of its own can (not inside quotes, after a backslash, in a here-document
 * and the like): one that does not is refused, naming `field`, its line and
 * column and what to write instead.
 */
export function parseStepInput(source: string, field: string, options: { shell?: boolean } = {}): InputTemplate {
  const parts: InputPart[] = [];
  const stepRefs = new Set<string>();
  let base = 0;
  source.split("$${").forEach((chunk, i) => {
    if (i > 0) {
      parts.push({ text: "${" });
      base += "$${".length;
    }
    let last = 0;
    for (const match of chunk.matchAll(REFERENCE)) {
      if (match.index > last) parts.push({ text: chunk.slice(last, match.index) });
      const ref = match[1]!.trim();
      const input = INPUT_REF.exec(ref);
      const step = STEP_REF.exec(ref);
      const at = base + match.index;
      if (input !== null) parts.push({ input: input[1] ?? null, at });
      else if (step !== null) {
        parts.push({ step: step[1]!, field: "output", at });
        stepRefs.add(step[1]!);
      } else throw new InvalidInputError(`\${${ref.slice(0, 80)}} is not \${input}, \${input.NAME} or \${steps.ID.output} (write $\${ for a literal \${)`, field);
      last = match.index + match[0].length;
    }
    if (last < chunk.length) parts.push({ text: chunk.slice(last) });
    base += chunk.length;
  });
  const template = { source, parts: mergeText(parts), stepRefs: [...stepRefs], shell: options.shell === true };
  if (template.shell) checkShellPlaces(template, field);
  return template;
}

/** Refuse a reference of a shell command line that stands where a word of its own cannot. */
function checkShellPlaces(template: InputTemplate, field: string): void {
  const scanner = new ShellScanner();
  for (const part of template.parts) {
    if ("text" in part) {
      scanner.text(part.text);
      continue;
    }
    const ref = referenceText(part);
    const why = scanner.reference(ref);
    if (why === undefined) continue;
    const before = template.source.slice(0, part.at).split("\n");
    throw new InvalidInputError(`${ref} at line ${before.length}, column ${before[before.length - 1]!.length + 1} stands ${why}`, field);
  }
}

/** A reference as a template writes it. */
function referenceText(part: Exclude<InputPart, { text: string }>): string {
  return "step" in part ? `\${steps.${part.step}.output}` : part.input === null ? "${input}" : `\${input.${part.input}}`;
}

function mergeText(parts: InputPart[]): InputPart[] {
  const out: InputPart[] = [];
  for (const part of parts) {
    const prev = out[out.length - 1];
    if ("text" in part && prev !== undefined && "text" in prev) prev.text += part.text;
    else out.push({ ...part });
  }
  return out;
}

/**
 * The input a step starts with. A named value the workflow's input lacks, or
 * the whole input asked of named values, is refused naming `field`, so the
 * step fails with the reason rather than running on a guess.
 *
 * A shell step's values never become shell syntax, whatever they hold: the
 * command line starts with one assignment a value, `coderclaw_value_N='...'`
 * (single-quoted, each `'` written `'\''`), and each reference becomes
 * `"$coderclaw_value_N"`, one word that is neither split nor globbed. A value
 * holding a NUL, which no command line can carry, is refused.
 */
export function fillStepInput(template: InputTemplate, values: InputValues, field: string): string {
  let assignments = "";
  const names = new Map<string, string>();
  let out = "";
  for (const part of template.parts) {
    if ("text" in part) out += part.text;
    else if (!template.shell) out += valueOf(part, values, field);
    else {
      const ref = referenceText(part);
      let name = names.get(ref);
      if (name === undefined) {
        const value = valueOf(part, values, field);
        if (value.includes("\0")) throw new InvalidInputError(`the value for ${ref} holds a NUL character, which no command line can carry`, field);
        name = `coderclaw_value_${names.size + 1}`;
        names.set(ref, name);
        assignments += `${name}=${shellWord(value)}\n`;
      }
      out += `"$${name}"`;
    }
    // A template that repeats a large value builds a string past what the process can hold (a RangeError, taken
    // for the coordinator's own trouble and retried for ever) or one no runtime would take: refused as the step's input.
    if (assignments.length + out.length > MAX_FILLED_INPUT_CHARS) throw new InvalidInputError(`the filled input is over the limit of ${MAX_FILLED_INPUT_CHARS} characters`, field);
  }
  return assignments + out;
}

/** The value a reference is filled with. */
function valueOf(part: Exclude<InputPart, { text: string }>, values: InputValues, field: string): string {
  if ("step" in part) {
    const output = values.outputs.get(part.step);
    if (output === undefined) throw new InvalidInputError(`step ${part.step} has no output to fill \${steps.${part.step}.output} with`, field);
    return output;
  }
  if (part.input === null) return typeof values.input === "string" ? values.input : JSON.stringify(values.input);
  const named = typeof values.input === "string" ? undefined : values.input[part.input];
  if (named === undefined) throw new InvalidInputError(`the workflow's input has no value "${part.input}" for \${input.${part.input}}`, field);
  return named;
}

/** Largest step input filled in, in UTF-16 units (each at least one UTF-8 byte): far above a task's input limit (1 MiB by default, and on the mesh's wire), far below a string's. */
export const MAX_FILLED_INPUT_CHARS = 64 * 1024 * 1024;
