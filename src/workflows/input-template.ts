import { InvalidInputError } from "../contract/errors.js";

/** One piece of a step's input: text as written, or a value filled in when the step starts. */
export type InputPart = { text: string } | { input: string | null } | { step: string; field: "output" };

/** A step's input, parsed once when the workflow is checked. */
export interface InputTemplate {
  /** The input as written. */
  source: string;
  parts: InputPart[];
  /** Steps whose output it uses. */
  stepRefs: string[];
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
 */
export function parseStepInput(source: string, field: string): InputTemplate {
  const parts: InputPart[] = [];
  const stepRefs = new Set<string>();
  const escaped = source.split("$${");
  escaped.forEach((chunk, i) => {
    if (i > 0) parts.push({ text: "${" });
    let last = 0;
    for (const match of chunk.matchAll(REFERENCE)) {
      if (match.index > last) parts.push({ text: chunk.slice(last, match.index) });
      const ref = match[1]!.trim();
      const input = INPUT_REF.exec(ref);
      const step = STEP_REF.exec(ref);
      if (input !== null) parts.push({ input: input[1] ?? null });
      else if (step !== null) {
        parts.push({ step: step[1]!, field: "output" });
        stepRefs.add(step[1]!);
      } else throw new InvalidInputError(`\${${ref.slice(0, 80)}} is not \${input}, \${input.NAME} or \${steps.ID.output} (write $\${ for a literal \${)`, field);
      last = match.index + match[0].length;
    }
    if (last < chunk.length) parts.push({ text: chunk.slice(last) });
  });
  return { source, parts: mergeText(parts), stepRefs: [...stepRefs] };
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
 */
export function fillStepInput(template: InputTemplate, values: InputValues, field: string): string {
  let out = "";
  for (const part of template.parts) {
    if ("text" in part) out += part.text;
    else if ("step" in part) {
      const output = values.outputs.get(part.step);
      if (output === undefined) throw new InvalidInputError(`step ${part.step} has no output to fill \${steps.${part.step}.output} with`, field);
      out += output;
    } else if (part.input === null) {
      out += typeof values.input === "string" ? values.input : JSON.stringify(values.input);
    } else {
      const named = typeof values.input === "string" ? undefined : values.input[part.input];
      if (named === undefined) throw new InvalidInputError(`the workflow's input has no value "${part.input}" for \${input.${part.input}}`, field);
      out += named;
    }
    // A template that repeats a large value builds a string past what the process can hold (a RangeError, taken
    // for the coordinator's own trouble and retried for ever) or one no runtime would take: refused as the step's input.
    if (out.length > MAX_FILLED_INPUT_CHARS) throw new InvalidInputError(`the filled input is over the limit of ${MAX_FILLED_INPUT_CHARS} characters`, field);
  }
  return out;
}

/** Largest step input filled in, in UTF-16 units (each at least one UTF-8 byte): far above a task's input limit (1 MiB by default, and on the mesh's wire), far below a string's. */
export const MAX_FILLED_INPUT_CHARS = 64 * 1024 * 1024;
