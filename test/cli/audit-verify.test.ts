import { ClassicLevel } from "classic-level";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { tempDir } from "../helpers/temp-dir.js";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
beforeAll(assertBuilt);

describe("coderclaw audit verify over damaged storage", () => {
  it("reports a garbage segment of a chain without a head record as corrupt, names it, verifies the rest and exits non-zero", { timeout: 60_000 }, async () => {
    const d = tempDir("cc-audit-");
    cleanups.push(() => d.remove());
    const h = d.path;
    const node = await startCli(["start", "--no-mdns"], h, /control socket/);
    cleanups.push(() => node.stop());
    expect((await runCli(["task", "submit", "audited", "--wait"], h)).code).toBe(0);
    expect(await node.stop()).toBe(0);

    const db = new ClassicLevel<string, Uint8Array>(join(h, "db"), { keyEncoding: "utf8", valueEncoding: "view" });
    await db.put("!audit!audit/12D3KooWOther/0000000000/snap", new Uint8Array([0x85, 0x6f, 0x4a, 0x83, 1, 2, 3, 4, 5]));
    await db.close();

    const verify = await runCli(["audit", "verify"], h);
    expect(verify.code).not.toBe(0);
    expect(verify.stdout).toMatch(/^TAMPERED: \d+ entries in 2 chain\(s\)/);
    expect(verify.stdout).toContain('"author":"12D3KooWOther","kind":"corrupt","segment":0');
    expect(verify.stdout).toContain("audit segment 0 of chain 12D3KooWOther is corrupt");
    expect(verify.stderr).not.toContain("unable to parse chunk");
  });
});
