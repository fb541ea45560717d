import { describe, expect, it } from "vitest";
import { LLM_ROLES } from "../../src/agents/roles.js";
import { parseWorkflowFile, readWorkflowSource, workflowTemplates } from "../../src/workflows/index.js";

describe("the shipped workflow templates", () => {
  it("are the six upstream ones, each valid and naming only agents this package ships", () => {
    expect(workflowTemplates()).toEqual(["adversarial-review", "bug-fix", "feature", "planning", "refactor", "security-audit"]);
    const roles = new Set(LLM_ROLES.map((r) => r.id));
    for (const name of workflowTemplates()) {
      const { file, text } = readWorkflowSource(name, "/nonexistent");
      const def = parseWorkflowFile(text, file);
      expect(def.name).toBe(name);
      for (const step of def.steps) expect(roles, `${name}: ${step.id}`).toContain(step.agent);
    }
  });

  it("refuses a name that is neither a file nor a template, listing the templates", () => {
    expect(() => readWorkflowSource("no-such-thing", "/nonexistent")).toThrow(/no template "no-such-thing" \(templates: adversarial-review, bug-fix/);
  });
});
