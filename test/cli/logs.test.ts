import { spawn } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, CLI, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

/** `start --log-level` writes node.log in the home (pino JSON lines, size-bounded); `logs [-f]` reads it. */

const cleanups: Array<() => unknown> = [];
const home = (): string => {
  const d = tempDir("cc-logs-");
  cleanups.push(d.remove);
  return d.path;
};
beforeAll(() => assertBuilt());
afterAll(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Line = { level: number; msg: string; time: number; deviceId?: string };
const lines = (path: string): Line[] => readFileSync(path, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Line);

describe("node.log", () => {
  it("holds structured lines from start to stop, filtered by --log-level; logs prints them for people or as JSON", async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns", "--log-level", "info"], h, /control socket/);
    const id = (JSON.parse((await runCli(["id", "--json"], h)).stdout) as { deviceId: string }).deviceId;
    expect(await node.stop()).toBe(0);
    const written = lines(join(h, "node.log"));
    expect(written.map((l) => l.msg)).toEqual(["started", "stopping", "stopped"]);
    expect(written[0]).toMatchObject({ level: 30, deviceId: id });

    const human = await runCli(["logs"], h);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ INFO  started deviceId=${id} `, "m"));
    const json = await runCli(["logs", "--json", "-n", "1"], h);
    expect(json.stdout.trim().split("\n").map((l) => (JSON.parse(l) as Line).msg)).toEqual(["stopped"]);

    const quiet = home();
    const q = await startCli(["start", "--no-mdns", "--log-level", "warn"], quiet, /control socket/);
    await q.stop();
    expect(lines(join(quiet, "node.log"))).toEqual([]);
  }, 60_000);

  it("has a line for each task transition, naming the task and its status", async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    const sub = await runCli(["task", "submit", "hello", "--agent", "echo", "--wait", "--json"], h);
    expect(sub.code, sub.stderr).toBe(0);
    const taskId = (JSON.parse(sub.stdout) as { id: string }).id;
    expect(await node.stop()).toBe(0);
    const transitions = (lines(join(h, "node.log")) as Array<Line & { taskId?: string; status?: string }>).filter((l) => l.msg === "task" && l.taskId === taskId).map((l) => l.status);
    expect(transitions).toEqual(["planning", "running", "completed"]);
  }, 60_000);

  it("starts a new file past --log-max-bytes, keeping the previous one as node.log.1", async () => {
    const h = home();
    const old = JSON.stringify({ level: 30, time: 0, msg: "old" }) + "\n";
    writeFileSync(join(h, "node.log"), old.repeat(Math.ceil(5000 / old.length)));
    const node = await startCli(["start", "--no-mdns", "--log-max-bytes", "4096"], h, /control socket/);
    await node.stop();
    expect(lines(join(h, "node.log.1")).every((l) => l.msg === "old")).toBe(true);
    expect(lines(join(h, "node.log")).map((l) => l.msg)).toEqual(["started", "stopping", "stopped"]);
    // Fewer lines than asked in node.log: logs reaches into node.log.1.
    const r = await runCli(["logs", "--json", "-n", "4"], h);
    expect(r.stdout.trim().split("\n").map((l) => (JSON.parse(l) as Line).msg)).toEqual(["old", "started", "stopping", "stopped"]);
  }, 60_000);

  it("logs -f prints lines as the node writes them, until Ctrl-C", async () => {
    const h = home();
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    const follower = spawn(process.execPath, [CLI, "logs", "-f", "--json"], { env: { ...process.env, CODERCLAW_HOME: h }, stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    follower.stdout.on("data", (d: Buffer) => (out += d.toString()));
    await waitFor(() => out.includes('"msg":"started"'));
    await node.stop();
    await waitFor(() => out.includes('"msg":"stopped"'));
    const code = await new Promise<number | null>((resolve) => {
      follower.once("exit", resolve);
      follower.kill("SIGINT");
    });
    expect(code).toBe(130);
  }, 60_000);

  it("logs --fields prints only those fields of each line, a line without one empty, and refuses a field no line has", async () => {
    const h = home();
    const at = Date.UTC(2026, 11, 5, 12, 0, 0);
    const entries = [
      { level: 30, time: at, pid: 1, hostname: "x", msg: "started" },
      { level: 30, time: at + 1000, pid: 1, hostname: "x", msg: "task", task: "t-1", status: "completed" },
    ];
    writeFileSync(join(h, "node.log"), entries.map((e) => JSON.stringify(e)).join("\n") + "\n{torn");
    const text = await runCli(["logs", "--fields", "msg,task,status"], h);
    expect(text.code).toBe(0);
    expect(text.stdout).toBe("started\t\t\ntask\tt-1\tcompleted\n");
    const json = await runCli(["logs", "--json", "--fields", "time,task"], h);
    expect(json.stdout.trim().split("\n").map((l) => JSON.parse(l) as unknown)).toEqual([
      { time: at, task: null },
      { time: at + 1000, task: "t-1" },
    ]);
    const typo = await runCli(["logs", "--fields", "msg,tsak"], h);
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain('no row has "tsak"; fields: ');
    expect(typo.stdout).toBe("");
  });

  it("logs refuses a home with no log, saying where it looked", async () => {
    const h = home();
    const r = await runCli(["logs"], h);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`no log yet: ${join(h, "node.log")} does not exist`);
    expect(existsSync(join(h, "node.log"))).toBe(false);
  });
});

async function waitFor(check: () => boolean, timeoutMs = 15_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > until) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 100));
  }
}
