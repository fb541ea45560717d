import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import fc from "fast-check";
import { afterEach, describe, expect, it } from "vitest";
import { checkWorkflow, fillStepInput, parseWorkflowFile, type WorkflowStep } from "../../src/workflows/index.js";
import { refusal } from "../helpers/refusal.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

/** Step `run` of a workflow where it runs `command` on the shell agent after a step `a`. */
function shellStep(command: string): WorkflowStep {
  const def = checkWorkflow({ name: "w", steps: [{ id: "a", agent: "echo", input: "a" }, { id: "run", agent: "shell", dependsOn: ["a"], input: command }] });
  return def.steps.find((s) => s.id === "run")!;
}

/** `command` filled with `value` as step a's output and as the named input `v`, run by /bin/sh as the shell agent runs it. */
function run(command: string, value: string, cwd?: string): { stdout: Buffer; status: number | null } {
  const filled = fillStepInput(shellStep(command).input, { input: { v: value }, outputs: new Map([["a", value]]) }, "steps.run.input");
  const r = spawnSync("/bin/sh", ["-c", filled], { ...(cwd !== undefined && { cwd }), maxBuffer: 64 * 1024 * 1024 });
  if (r.error !== undefined) throw r.error;
  return { stdout: r.stdout, status: r.status };
}

/** Text as hostile as it comes: the shell's own characters, line breaks, lone surrogates and any other code point. */
const hostile = fc
  .array(
    fc.oneof(
      fc.constantFrom("'", '"', "\\", "`", "$", "$(", ")", "${", "}", ";", "&", "|", "<", ">", "\n", "\r", "\t", " ", "*", "?", "[", "]", "#", "~", "'\\''", "EOF", "-", "%s", "\u00ff", "\u{1F600}"),
      fc.integer({ min: 1, max: 0xffff }).map((c) => String.fromCharCode(c)),
      fc.string({ unit: "binary", maxLength: 8 }).map((s) => s.replaceAll("\0", "")),
    ),
    { maxLength: 40 },
  )
  .map((pieces) => pieces.join(""));

describe("a shell step's filled values", () => {
  it("property: whatever a value holds, the filled command prints exactly it, as one word, and joined to the text around it", () => {
    fc.assert(
      fc.property(hostile, (value) => {
        const bytes = Buffer.from(value);
        const printed = run("printf '%s|' ${steps.a.output}; printf '%s' pre${input.v}post ${steps.a.output}", value).stdout;
        expect(printed).toEqual(Buffer.concat([bytes, Buffer.from("|pre"), bytes, Buffer.from("post"), bytes]));
      }),
      { numRuns: 100 },
    );
  });

  it("runs none of a hostile value's commands, and takes a value longer than any line the shell reads at once", () => {
    const dir = tempDir("cc-wf-shell-");
    cleanups.push(() => dir.remove());
    const marker = join(dir.path, "pwned");
    for (const value of [`; touch ${marker}`, `$(touch ${marker})`, `\`touch ${marker}\``, `'; touch ${marker}; '`, `"; touch ${marker}; "`, `\ntouch ${marker}\n`, `x' && touch ${marker} #`]) {
      const r = run("printf '%s' ${steps.a.output} && printf '%s' ${input.v}", value, dir.path);
      expect(r.status).toBe(0);
      expect(r.stdout.toString()).toBe(value + value);
      expect(existsSync(marker), value).toBe(false);
    }
    const long = "'$(x)`\"\\\n".repeat(10_000);
    expect(run("printf '%s' ${steps.a.output} | wc -c", long).stdout.toString().trim()).toBe(String(Buffer.byteLength(long)));
  });

  it("refuses a value holding a NUL, which no command line can carry", () => {
    expect(refusal(() => fillStepInput(shellStep("echo ${input.v}").input, { input: { v: "a\0b" }, outputs: new Map([["a", ""]]) }, "steps.run.input")).message).toMatch(/\$\{input\.v\} holds a NUL/);
  });

  it("fills a value used twice once, and leaves other agents' inputs as they were", () => {
    const filled = fillStepInput(shellStep("cp ${steps.a.output} ${steps.a.output}.bak").input, { input: "", outputs: new Map([["a", "it's"]]) }, "f");
    expect(filled).toBe(`coderclaw_value_1='it'\\''s'\ncp "$coderclaw_value_1" "$coderclaw_value_1".bak`);
    const echo = checkWorkflow({ name: "w", steps: [{ id: "a", agent: "echo", input: `say "\${input}"` }] }).steps[0]!;
    expect(fillStepInput(echo.input, { input: "it's; ok", outputs: new Map() }, "f")).toBe(`say "it's; ok"`);
  });

  it.each([
    ["inside double quotes", 'echo "result: ${steps.a.output}"', "line 1, column 15", /inside double quotes/],
    ["inside single quotes", "echo 'x' && sh -c 'echo ${input}'", "line 1, column 25", /inside single quotes/],
    ["inside $'...'", "echo $'\\n${input}'", "line 1, column 10", /inside \$'\.\.\.'/],
    ["after a backslash", "echo \\${input}", "line 1, column 7", /after a backslash/],
    ["inside backquotes", "echo `cat ${input}`", "line 1, column 11", /inside backquotes/],
    ["inside arithmetic", "echo $(( ${input.n} + 1 ))", "line 1, column 10", /arithmetic/],
    ["inside bash arithmetic", "(( ${input.n} > 2 )) && echo big", "line 1, column 4", /arithmetic/],
    ["inside ${...}", "echo $${NAME:-${input}}", "line 1, column 15", /inside \$\{\.\.\.\}/],
    ["inside a here-document", "cat <<EOF\nvalue: ${steps.a.output}\nEOF", "line 2, column 8", /inside a here-document/],
    ["as a here-document's delimiter", "cat <<${input}", "line 1, column 7", /delimiter/],
    ["inside double quotes across lines", 'echo "one\ntwo ${input}"', "line 2, column 5", /inside double quotes/],
    ["inside double quotes after a word with a # in it", 'echo ${input}#x "${input}"', "line 1, column 18", /inside double quotes/],
    ["inside double quotes after a comment with a quote in it", "# it's\necho \"${input}\"", "line 2, column 7", /inside double quotes/],
  ])("refuses a reference %s when the workflow is checked, naming the field, the line and the column", (_what, command, position, why) => {
    const r = refusal(() => shellStep(command));
    expect(r.field).toBe("steps[1].input");
    expect(r.message).toContain(position);
    expect(r.message).toMatch(why);
  });

  it.each([
    ["as a word of its own", "printf '%s' ${input.v}", "V"],
    ["in an assignment", "x=${input.v}; printf '%s' \"$x\"", "V"],
    ["in a $(...) inside double quotes", "printf '%s' \"[$(printf '%s' ${input.v})]\"", "[V]"],
    ["in a comment", "printf ok # ${input.v}", "ok"],
    ["after quotes and a here-document", "cat <<'EOF'\nit's \"here\"\nEOF\nprintf '%s' \"it's\" ${input.v}", "it's \"here\"\nit'sV"],
    ["after a here-document whose delimiter line holds a tab (<<-)", "cat <<-END\n\tx\n\tEND\nprintf '%s' ${input.v}", "x\nV"],
    ["after an escaped quote", "printf '%s' it\\'s ${input.v}", "it'sV"],
    ["in a case branch", "case x in x) printf '%s' ${input.v};; esac", "V"],
  ])("fills a reference %s", (_what, command, printed) => {
    expect(run(command, "V").stdout.toString()).toBe(printed);
  });

  it("takes a word after bash's <<< (a here-string) as a word, not as a here-document's delimiter", () => {
    expect(shellStep("cat <<< ${input.v}").input.shell).toBe(true);
  });

  it("refuses a misplaced reference in a workflow file, naming the file, the line and the column in the input", () => {
    const text = ["name: w", "steps:", "  - id: run", "    agent: shell", `    input: 'echo "\${input}"'`, ""].join("\n");
    expect(() => parseWorkflowFile(text, "w.yaml")).toThrow(/w\.yaml:5:\d+: steps\[0\]\.input: \$\{input\} at line 1, column 7 stands inside double quotes/);
  });
});
