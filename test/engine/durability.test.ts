import { spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import type { TaskEvent, TaskState } from "../../src/contract/types.js";
import { canTransition } from "../../src/engine/state-machine.js";
import { runThenKill as runChildThenKill } from "../helpers/processes.js";
import { tempDir } from "../helpers/temp-dir.js";

const child = fileURLToPath(new URL("../fixtures/durability-child.mjs", import.meta.url));
const built = fileURLToPath(new URL("../../dist/src/index.js", import.meta.url));
const dirs: Array<{ remove: () => void }> = [];
afterEach(() => dirs.splice(0).forEach((d) => d.remove()));

interface Stored {
  state: TaskState & { createdAt: string };
  events: Array<TaskEvent & { timestamp: string }>;
}

/** Run the child in `mode` until `enough` says so from the lines it printed, then SIGKILL it. */
function runThenKill(mode: string, home: string, enough: (line: string) => boolean): Promise<void> {
  return runChildThenKill(child, [mode, home], enough);
}

/** What a restarted process finds in `home` once recovery has finished. */
async function recovered(home: string): Promise<Stored[]> {
  const recover = spawn(process.execPath, [child, "recover", home], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  recover.stdout.on("data", (d: Buffer) => (out += d.toString()));
  recover.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const code = await new Promise((r) => recover.on("exit", r));
  expect(code, err).toBe(0);
  return JSON.parse(out) as Stored[];
}

describe("durability across SIGKILL", () => {
  it("keeps every accepted task, once, with its history; resumes resumable work and fails the rest as interrupted", async () => {
    expect(existsSync(built), "run `npm run build` first (npm test does)").toBe(true);
    const dir = tempDir("cc-durability-");
    dirs.push(dir);

    const accepted = new Map<string, string>();
    await runThenKill("run", dir.path, (line) => {
      const [word, id, kind] = line.split(" ");
      if (word === "accepted" && id && kind) accepted.set(id, kind);
      // Kill mid-run: plenty accepted, sleeps still running, more queued.
      return accepted.size >= 60;
    });
    const stored = await recovered(dir.path);

    const byId = new Map(stored.map((s) => [s.state.id, s]));
    expect(byId.size).toBe(stored.length); // no duplicates
    for (const [id, kind] of accepted) {
      const s = byId.get(id);
      expect(s, `accepted task ${id} (${kind}) lost`).toBeDefined();
      const status = s!.state.status;
      expect(["completed", "failed"]).toContain(status);
      if (kind !== "sleep") expect(status, `${kind} ${id}`).toBe("completed");
      if (status === "failed") expect(s!.state.error).toBe("interrupted by restart");
      // Full, legal history with gap-free sequence numbers.
      expect(s!.events[0]?.type).toBe("created");
      expect(s!.events.map((e) => e.seq)).toEqual(s!.events.map((_, i) => i + 1));
      let at = "pending" as TaskState["status"];
      for (const e of s!.events.filter((e) => e.type === "status_changed")) {
        expect(canTransition(at, e.status), `${id}: ${at} -> ${e.status}`).toBe(true);
        at = e.status;
      }
    }
    // Tasks beyond the accepted ones can only be submissions that became durable just before the kill.
    expect(stored.length - accepted.size).toBeLessThanOrEqual(1);
    const interrupted = stored.filter((s) => s.state.error === "interrupted by restart");
    expect(interrupted.length).toBeGreaterThan(0);
    expect(stored.some((s) => s.events.some((e) => e.message === "resumed after restart"))).toBe(true);
  }, 60_000);

  it("keeps every outcome it announced: a task a stream saw complete is complete after the crash", async () => {
    const dir = tempDir("cc-announced-");
    dirs.push(dir);
    const announced = new Map<string, string>();
    await runThenKill("announce", dir.path, (line) => {
      const [word, id, status] = line.split(" ");
      if (word === "outcome" && id && status) announced.set(id, status);
      return announced.size >= 330;
    });
    const byId = new Map((await recovered(dir.path)).map((s) => [s.state.id, s.state]));
    const changed = [...announced].filter(([id, status]) => byId.get(id)?.status !== status).map(([id, status]) => `${id}: announced ${status}, found ${byId.get(id)?.status ?? "nothing"} ${byId.get(id)?.error ?? ""}`);
    expect(changed, `of ${announced.size} announced outcomes`).toEqual([]);
  }, 60_000);

  it("never runs a task of an agent that cannot resume twice: its start is on record before the agent acts", async () => {
    const dir = tempDir("cc-effects-");
    dirs.push(dir);
    // Killed in five different moments of a stream of starts, each run recovering what the last left.
    for (let round = 0; round < 5; round++) {
      let accepted = 0;
      await runThenKill("effects", dir.path, (line) => line.startsWith("accepted") && ++accepted >= 40 + round * 7);
    }
    const stored = await recovered(dir.path);
    const effects = readFileSync(join(dir.path, "effects"), "utf8").split("\n").filter(Boolean);
    const twice = effects.filter((id, i) => effects.indexOf(id) !== i);
    expect(twice, `of ${effects.length} starts`).toEqual([]);
    // Every task whose agent acted ended as it ran or as interrupted; none of them ran again.
    const byId = new Map(stored.map((s) => [s.state.id, s.state]));
    for (const id of effects) expect(["completed", "failed"], id).toContain(byId.get(id)?.status);
  }, 120_000);
});
