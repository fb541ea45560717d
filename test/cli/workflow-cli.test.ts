import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

function home(): string {
  const d = tempDir("cc-wfcli-");
  cleanups.push(() => d.remove());
  return d.path;
}

async function show(h: string, id: string): Promise<{ status: string; steps: Record<string, { status: string; attempts: unknown[] }> }> {
  const r = await runCli(["workflow", "show", id, "--json"], h);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as { status: string; steps: Record<string, { status: string; attempts: unknown[] }> };
}

describe("coderclaw workflow", () => {
  it("runs a file on the node with --wait, filling inputs from earlier outputs, and exits 0; a bad file is refused naming file, line and key", async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    const file = join(h, "hello.yaml");
    writeFileSync(file, ["name: hello", "steps:", "  - id: greet", "    agent: echo", '    input: "hello ${input}"', "  - id: shout", "    agent: echo", "    dependsOn: [greet]", '    input: "${steps.greet.output}!"', ""].join("\n"));
    const run = await runCli(["workflow", "run", file, "--input", "mesh", "--wait", "--json"], h);
    expect(run.code, run.stderr).toBe(0);
    const done = JSON.parse(run.stdout) as { status: string; steps: { shout: { output: string } } };
    expect(done.status).toBe("completed");
    expect(done.steps.shout.output).toBe("hello mesh!");

    writeFileSync(file, ["name: broken", "steps:", "  - id: greet", "    agent: echo", "    dependsOn: [nobody]", ""].join("\n"));
    const bad = await runCli(["workflow", "run", file], h);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${file}:5:`);
    expect(bad.stderr).toContain("steps[0].dependsOn[0]");

    const missing = await runCli(["workflow", "run", "no-such-template"], h);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain("templates: adversarial-review, bug-fix");
    const list = await runCli(["workflow", "list", "--json"], h);
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(1);
  }, 60_000);

  it("runs, lists, shows and cancels over --server as the session's subject, from a home with no node; a file's mistake is told naming the file", async () => {
    const h = home();
    const elsewhere = home();
    expect((await runCli(["mesh", "create", "--name", "wf over http"], h)).code).toBe(0);
    const node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], h, /control socket/);
    cleanups.push(() => node.stop());
    const url = /http (http:\/\/\S+)/.exec(node.output())![1]!;
    const token = (await runCli(["session", "create"], h)).stdout.trim();
    const server = ["--server", url, "--token", token];
    const file = join(elsewhere, "hello.yaml");
    writeFileSync(file, ["name: hello", "steps:", "  - id: greet", "    agent: echo", '    input: "hello ${input}"', ""].join("\n"));
    const run = await runCli(["workflow", "run", file, "--input", "http", "--wait", "--json", ...server], elsewhere);
    expect(run.code, run.stderr).toBe(0);
    const done = JSON.parse(run.stdout) as { id: string; status: string; steps: { greet: { output: string } } };
    expect(done.status).toBe("completed");
    expect(done.steps.greet.output).toBe("hello http");

    const list = await runCli(["workflow", "list", "--json", ...server], elsewhere);
    expect(list.code, list.stderr).toBe(0);
    expect((JSON.parse(list.stdout) as Array<{ id: string; status: string; steps: Record<string, number> }>).map((w) => [w.id, w.status, w.steps.completed])).toEqual([[done.id, "completed", 1]]);
    const shown = await runCli(["workflow", "show", done.id, ...server], elsewhere);
    expect(shown.stdout).toContain(`workflow ${done.id} (hello): completed`);

    writeFileSync(file, ["name: slow", "steps:", "  - id: nap", "    agent: sleep", '    input: "60000 1"', ""].join("\n"));
    const started = JSON.parse((await runCli(["workflow", "run", file, "--json", ...server], elsewhere)).stdout) as { id: string };
    await eventually(async () => (await show(h, started.id)).steps.nap!.status === "running", 20_000, "the slow step running");
    const cancel = await runCli(["workflow", "cancel", started.id, ...server], elsewhere);
    expect(cancel.code, cancel.stderr).toBe(0);
    expect((await show(h, started.id)).status).toBe("cancelled");
    const again = await runCli(["workflow", "cancel", started.id, ...server], elsewhere);
    expect(again.code).not.toBe(0);

    writeFileSync(file, ["name: broken", "steps:", "  - id: greet", "    agent: echo", "    dependsOn: [nobody]", ""].join("\n"));
    const bad = await runCli(["workflow", "run", file, ...server], elsewhere);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain(`${file}:5:`);
    const noToken = await runCli(["workflow", "list", "--server", url, "--token", "not-a-token"], elsewhere);
    expect(noToken.code).not.toBe(0);
  }, 90_000);

  it("carries on after the node is SIGKILLed while step two runs: restarted, it completes with each step's side effect once", async () => {
    const h = home();
    const effects = join(h, "effects.txt");
    const go = join(h, "go");
    writeFileSync(effects, "");
    const file = join(h, "chain.yaml");
    writeFileSync(
      file,
      [
        "name: chain",
        "steps:",
        "  - id: one",
        "    agent: shell",
        `    input: "echo one >> ${effects}"`,
        "  - id: two",
        "    agent: shell",
        "    dependsOn: [one]",
        // Step two runs until the test lets it go, so the node is killed while it runs, however slow the machine.
        `    input: "until [ -f ${go} ]; do sleep 0.1; done; echo two >> ${effects}"`,
        "    retry: { attempts: 2, backoff: 100ms }",
        "  - id: three",
        "    agent: shell",
        "    dependsOn: [two]",
        `    input: "echo three >> ${effects}"`,
        "",
      ].join("\n"),
    );
    const first = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => (first.child.exitCode === null && first.child.signalCode === null ? first.stop() : undefined));
    const run = await runCli(["workflow", "run", file, "--json"], h);
    expect(run.code, run.stderr).toBe(0);
    const { id } = JSON.parse(run.stdout) as { id: string };
    await eventually(async () => (await show(h, id)).steps.two!.status === "running", 30_000, "step two running");
    first.child.kill("SIGKILL");
    await new Promise((r) => first.child.once("exit", r));

    const second = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => second.stop());
    writeFileSync(go, "");
    const wait = await runCli(["workflow", "show", id, "--wait", "--json"], h, 30_000);
    expect(wait.code, wait.stderr).toBe(0);
    expect((JSON.parse(wait.stdout) as { status: string }).status).toBe("completed");
    expect(readFileSync(effects, "utf8").split("\n").filter(Boolean).sort()).toEqual(["one", "three", "two"]);
  }, 90_000);
});
