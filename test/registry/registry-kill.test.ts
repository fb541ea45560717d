import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { startNodeProcess, type NodeProcess } from "../../node/cli/node-process.js";
import { assertBuilt } from "../helpers/cli.js";
import { eventually } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

beforeAll(assertBuilt);

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** Blob files the store holds whole or in part: progress of a fetch, as seen on disk. */
const blobFiles = (home: string): number => {
  const dir = join(home, "blobs");
  if (!existsSync(dir)) return 0;
  return readdirSync(dir).reduce((n, d) => n + (/^[0-9a-f]{2}$/.test(d) || d === ".partial" ? readdirSync(join(dir, d)).length : 0), 0);
};

describe("an install killed part way", () => {
  it("SIGKILLed while fetching or writing a skill, the member shows either no folder or the whole one; restarted, the install completes with the published bytes", { timeout: 120_000 }, async () => {
    const homes = ["a", "b"].map((n) => tempDir(`cc-reg-kill-${n}-`));
    cleanups.push(() => homes.forEach((h) => h.remove()));
    const [ha, hb] = homes.map((h) => h.path) as [string, string];
    const a = await startNodeProcess(ha);
    let b: NodeProcess = await startNodeProcess(hb);
    cleanups.push(() => a.stop(), () => b.stop());
    await a.client.admin("mesh.create", { name: "kill" });
    const { invite } = (await a.client.admin("mesh.invite", { level: "trusted", ttlMs: 60_000 })) as { invite: string };
    await b.client.admin("mesh.join", { invite });

    const folder = join(ha, "big");
    mkdirSync(folder);
    const payload = randomBytes(32 * 1024 * 1024);
    writeFileSync(join(folder, "SKILL.md"), "---\nname: big\ndescription: a big skill\n---\n");
    writeFileSync(join(folder, "payload.bin"), payload);
    await a.client.admin("skill.publish", { dir: folder, name: "team/big", version: "1.0.0" });
    const available = async (): Promise<boolean> => ((await b.client.admin("skill.list", {})) as { available: unknown[] }).available.length === 1;
    await eventually(available, 20_000, "the publication on b");

    const installing = b.client.admin("skill.install", { name: "team/big" }).catch((err: unknown) => err);
    await eventually(() => blobFiles(hb) > 0, 30_000, "the first blobs on b's disk");
    await b.kill();
    await installing;

    const target = join(hb, "skills", "team.big");
    const lockFile = join(hb, "skills.lock.json");
    if (existsSync(target)) expect(readFileSync(join(target, "payload.bin")).equals(payload)).toBe(true);
    if (existsSync(lockFile)) expect(existsSync(target)).toBe(true);

    b = await startNodeProcess(hb, ["--bootstrap", a.addr]);
    await eventually(available, 20_000, "b back with the publication");
    let done: { version?: string } = {};
    await eventually(async () => {
      done = (await b.client.admin("skill.install", { name: "team/big" }).catch(() => ({}))) as { version?: string };
      return done.version === "1.0.0";
    }, 60_000, "the install after the restart");
    expect(readFileSync(join(target, "payload.bin")).equals(payload)).toBe(true);
    expect((JSON.parse(readFileSync(lockFile, "utf8")) as { skills: Record<string, { version: string }> }).skills["team/big"]?.version).toBe("1.0.0");
    expect(readdirSync(join(hb, "skills")).filter((n) => n !== ".staging")).toEqual(["team.big"]);
    expect(existsSync(join(hb, "skills", ".staging")) ? readdirSync(join(hb, "skills", ".staging")) : []).toEqual([]);
  });
});
