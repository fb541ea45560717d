import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * `task diff|apply|artifacts` read a task's changes from this machine's node;
 * with `--server` they would have answered from the local home. They refuse,
 * name the HTTP route that serves the same data, and never reach the server.
 */

let home: { path: string; remove: () => void };
beforeAll(() => {
  assertBuilt();
  home = tempDir("cc-server-changes-");
});
afterAll(() => home.remove());

// Port 9 (discard) on 127.0.0.1: nothing listens, so any attempt to reach it would show as a connection error.
const server = ["--server", "http://127.0.0.1:9", "--token", "t"];

describe("task diff|apply|artifacts with --server", () => {
  it.each([
    [["task", "diff", "0123abcd"], "GET /v1/tasks/<id>/patch"],
    [["task", "apply", "0123abcd"], "GET /v1/tasks/<id>/patch, then git apply"],
    [["task", "artifacts", "0123abcd"], "GET /v1/tasks/<id>/artifacts"],
  ])("%j refuses with the route to use instead", async (args, route) => {
    const r = await runCli([...server, ...args], home.path);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`--server: \`${args.slice(0, 2).join(" ")}\` reads the changes from this machine's node, not over HTTP`);
    expect(r.stderr).toContain(route);
    expect(r.stdout).toBe("");
  });
});
