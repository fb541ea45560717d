import { describe, expect, it } from "vitest";
import { parsePublishedAgent, splitTeamAgents } from "../../src/registry/agent-publication.js";

const agent = (extra: string, id = "reviewer"): string => `  - id: ${id}
    name: Reviewer
    description: reviews
    capabilities: [review]
    command: [cat]
    input: stdin
${extra}`;

describe("team-agents files as publications", () => {
  it("splits a file into one single-agent file per agent, each read back as the agent its publication names", () => {
    const split = splitTeamAgents(`agents:\n${agent("")}${agent("    labels: [gpu]\n    skills: [shell-exec]\n", "linter")}`, "team-agents.yaml", "team");
    expect(split.map((a) => a.name)).toEqual(["team/reviewer", "team/linter"]);
    expect(parsePublishedAgent(split[1]!.text, "x", "team/linter")).toMatchObject({ id: "linter", labels: ["gpu"], skills: ["shell-exec"], command: ["cat"] });
    expect(() => parsePublishedAgent(split[1]!.text, "team/reviewer@1.0.0/team-agents.yaml", "team/reviewer")).toThrow(/team\/reviewer@1\.0\.0\/team-agents\.yaml:2:\d+: agents\[0\]\.id: is linter, but the publication names team\/reviewer/);
  });

  it("refuses, naming file, line and key: an id that is no registry name, a cwd outside the workspace, variables passed through, a schema error, an empty file, an oversized one", () => {
    expect(() => splitTeamAgents(`agents:\n${agent("", "Big_Agent")}`, "t.yaml", "team")).toThrow(/^t\.yaml:2:\d+: agents\[0\]\.id: a published agent's id must be lowercase/);
    expect(() => splitTeamAgents(`agents:\n${agent("    cwd: /etc\n")}`, "t.yaml", "team")).toThrow(/^t\.yaml:8:\d+: agents\[0\]\.cwd: a published agent's cwd must be a path inside the task's workspace/);
    expect(() => splitTeamAgents(`agents:\n${agent("    cwd: a/../../x\n")}`, "t.yaml", "team")).toThrow(/agents\[0\]\.cwd/);
    expect(() => parsePublishedAgent(`agents:\n${agent("    cwd: /etc\n")}`, "w", "team/reviewer")).toThrow(/^w:2:\d+: agents\[0\]\.cwd/);
    expect(() => splitTeamAgents(`agents:\n${agent("    env: [AWS_SECRET_ACCESS_KEY]\n")}`, "t.yaml", "team")).toThrow(/^t\.yaml:8:\d+: agents\[0\]\.env: a published agent may not pass a member's environment variables through/);
    expect(() => parsePublishedAgent(`agents:\n${agent("    env: [HOME]\n")}`, "w", "team/reviewer")).toThrow(/agents\[0\]\.env/);
    expect(splitTeamAgents(`agents:\n${agent("    env: { NO_COLOR: \"1\" }\n")}`, "t.yaml", "team")).toHaveLength(1);
    expect(() => splitTeamAgents(`agents:\n${agent("    labels: nope\n")}`, "t.yaml", "team")).toThrow(/^t\.yaml:8:\d+: agents\[0\]\.labels/);
    expect(() => splitTeamAgents("agents: []\n", "t.yaml", "team")).toThrow(/t\.yaml:1:1: agents: declares no agent to publish/);
    expect(() => splitTeamAgents(`agents:\n${agent("")}#${"x".repeat(1024 * 1024)}\n`, "t.yaml", "team")).toThrow(/over the limit of 1048576/);
    expect(() => parsePublishedAgent(`agents:\n${agent("")}${agent("", "other")}`, "w", "team/reviewer")).toThrow(/must declare exactly one agent, reviewer; it declares 2/);
  });
});
