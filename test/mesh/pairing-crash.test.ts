import { execFileSync, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { createNode } from "../../node/create-node.js";
import { tempDir } from "../helpers/temp-dir.js";

const CHILD = fileURLToPath(new URL("../fixtures/inviter-dies-after-welcome.mjs", import.meta.url));

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe("an inviter killed just after it sends the welcome", () => {
  it("has the joiner's certificate and the role its invite gave on record when it starts again", async () => {
    const inviterHome = tempDir("cc-inviter-");
    const joinerHome = tempDir("cc-joiner-");
    cleanups.push(() => inviterHome.remove(), () => joinerHome.remove());
    const child = spawn(process.execPath, [CHILD, inviterHome.path, "invite"], { stdio: ["ignore", "pipe", "inherit"] });
    cleanups.push(() => void child.kill("SIGKILL"));
    const killed = new Promise<NodeJS.Signals | null>((resolve) => child.on("exit", (_code, signal) => resolve(signal)));
    const lines = createInterface({ input: child.stdout });
    const { invite } = JSON.parse((await lines[Symbol.asyncIterator]().next()).value as string) as { invite: string };

    const joiner = await createNode({ dataDir: joinerHome.path, mdns: false });
    cleanups.push(() => joiner.stop());
    // The joiner then waits for the dead inviter to let it in as a member, and gives up after 20 s.
    const joined = joiner.pairing.join(invite).then(() => undefined, () => undefined);
    cleanups.push(() => joined);
    expect(await killed).toBe("SIGKILL");
    expect(joiner.membership.isMember(joiner.peerId)).toBe(true);

    const shown = execFileSync(process.execPath, [CHILD, inviterHome.path, "show"], { encoding: "utf8", timeout: 60_000 });
    const about = JSON.parse(shown.trim().split("\n").at(-1)!) as Record<string, string[]>;
    expect(about[joiner.peerId]?.sort()).toEqual(["role-grant", "trust-cert"]);
  }, 90_000);
});
