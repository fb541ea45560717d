import { existsSync, readFileSync, readdirSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { InvalidInputError } from "../contract/errors.js";
import { bundledDir } from "../util/bundled-dir.js";
import { MAX_WORKFLOW_FILE_BYTES } from "./workflow-file.js";

/** A workflow file's text and where it came from (for errors naming file and line). */
export interface WorkflowSource {
  file: string;
  text: string;
}

/** Names of the templates shipped with the package (`feature`, `bug-fix`, ...). */
export function workflowTemplates(): string[] {
  const dir = bundledDir("workflows");
  if (dir === undefined) return [];
  return readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .map((f) => f.slice(0, -".yaml".length))
    .sort();
}

/**
 * The text of a workflow named on the command line: a file path (relative to
 * `cwd`), or the name of a shipped template. A path wins over a template of
 * the same name; neither is refused listing the templates.
 */
export function readWorkflowSource(nameOrPath: string, cwd: string): WorkflowSource {
  return readSource(nameOrPath, resolve(cwd, nameOrPath));
}

/**
 * The text of a shipped template, by name alone: what a caller who names a
 * template (over HTTP) gets, whatever files lie where the node runs.
 */
export function readWorkflowTemplate(name: string): WorkflowSource {
  return readSource(name, undefined);
}

function readSource(nameOrPath: string, path: string | undefined): WorkflowSource {
  const dir = bundledDir("workflows");
  const template = dir === undefined || !/^[a-z0-9-]+$/.test(nameOrPath) ? undefined : join(dir, `${nameOrPath}.yaml`);
  const file = path !== undefined && existsSync(path) && statSync(path).isFile() ? path : template !== undefined && existsSync(template) ? template : undefined;
  if (file === undefined) throw new InvalidInputError(`${path === undefined ? "" : `no file ${path} and `}no template "${nameOrPath.slice(0, 80)}" (templates: ${workflowTemplates().join(", ")})`, "workflow");
  const size = statSync(file).size;
  if (size > MAX_WORKFLOW_FILE_BYTES) throw new InvalidInputError(`${file} is ${size} bytes, over the limit of ${MAX_WORKFLOW_FILE_BYTES}`, "workflow");
  return { file, text: readFileSync(file, "utf8") };
}
