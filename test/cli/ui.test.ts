import { existsSync } from "node:fs";
import puppeteer, { type Browser } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { openLoginLink } from "../helpers/dashboard.js";
import { tempDir } from "../helpers/temp-dir.js";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));

describe("coderclaw ui against a real node started with --http", () => {
  const home = tempDir("cc-ui-");
  const cleanups: Array<() => Promise<unknown>> = [];
  let httpUrl: string;

  beforeAll(async () => {
    assertBuilt();
    expect((await runCli(["mesh", "create", "--name", "dashboard"], home.path)).code).toBe(0);
    const node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], home.path, /control socket/);
    cleanups.push(() => node.stop());
    httpUrl = /http (http:\/\/\S+)/.exec(node.output())![1]!;
  }, 60_000);
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    home.remove();
  });

  it("prints a link whose code logs in once and is refused the second time", async () => {
    const run = await runCli(["ui", "--url", httpUrl], home.path);
    expect(run.code, run.stderr).toBe(0);
    const code = new RegExp(`^${httpUrl}/#login=([A-Za-z0-9_-]+)\\n$`).exec(run.stdout)?.[1];
    expect(code, run.stdout).toBeDefined();
    const login = (): Promise<Response> => fetch(`${httpUrl}/ui/login`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ code }) });
    const first = await login();
    expect(first.status).toBe(200);
    const { token } = (await first.json()) as { token: string };
    expect((await fetch(`${httpUrl}/v1/status`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect((await login()).status).toBe(401);
  }, 60_000);

  it("refuses a --ttl that is not a duration", async () => {
    const run = await runCli(["ui", "--url", httpUrl, "--ttl", "soon"], home.path);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/--ttl/);
  });

  describe.skipIf(CHROMIUM === undefined)("in Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      browser = await puppeteer.launch({ executablePath: CHROMIUM!, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
    });

    it("a task submitted from the CLI appears live; cancelled in the UI, the CLI sees it cancelled; a workflow shows its step graph as it runs; the queue says why a task waits", async () => {
      const page = await browser.newPage();
      const link = (await runCli(["ui", "--url", httpUrl], home.path)).stdout.trim();
      await openLoginLink(page, link);
      await page.waitForSelector("table[aria-label=Tasks]");
      const submitted = await runCli(["task", "submit", "60000", "--agent", "sleep", "--route", "local"], home.path);
      expect(submitted.code, submitted.stderr).toBe(0);
      const id = /[0-9a-f-]{36}/.exec(submitted.stdout + submitted.stderr)![0];
      await page.waitForSelector(`tr[data-task="${id}"]`, { timeout: 15_000 });
      await page.click(`tr[data-task="${id}"] a`);
      await page.waitForFunction(`document.getElementById("task-status")?.textContent === "running"`, { timeout: 15_000 });
      await page.click("::-p-text(Cancel task)");
      await page.waitForFunction(`document.getElementById("task-status")?.textContent === "cancelled"`, { timeout: 15_000 });
      const shown = await runCli(["task", "show", id, "--json"], home.path);
      expect(JSON.parse(shown.stdout)).toMatchObject({ id, status: "cancelled" });

      await page.goto(`${httpUrl}/#workflows`);
      const workflow = ["name: greet-twice", "steps:", "  - id: first", "    agent: echo", "    input: hi", "  - id: second", "    agent: echo", "    dependsOn: [first]", "    input: again", ""].join("\n");
      const token = (await runCli(["session", "create"], home.path)).stdout.trim();
      const started = await fetch(`${httpUrl}/v1/workflows`, { method: "POST", headers: { authorization: `Bearer ${token}`, "content-type": "application/json" }, body: JSON.stringify({ workflow }) });
      expect(started.status).toBe(201);
      await page.waitForFunction(`document.querySelector("[data-step=second]")?.textContent.startsWith("second: completed (after first)")`, { timeout: 15_000 });

      const queued = await runCli(["task", "submit", "later", "--agent", "echo", "--requires", "gpu"], home.path);
      expect(queued.code, queued.stderr).toBe(0);
      const queuedId = /[0-9a-f-]{36}/.exec(queued.stdout + queued.stderr)![0];
      await page.goto(`${httpUrl}/#queue`);
      await page.waitForSelector(`tr[data-task="${queuedId}"]`, { timeout: 15_000 });
      const reason = await page.$eval(`tr[data-task="${queuedId}"] td:nth-child(6)`, (td) => td.textContent);
      expect(reason).toMatch(/gpu/);

      // A spent link says so, and the tab keeps its session: sending someone a used link does not log them out.
      const stored = (): Promise<string | null> => page.evaluate(`sessionStorage.getItem("coderclaw.token")`) as Promise<string | null>;
      const held = await stored();
      await page.goto(link);
      await page.waitForSelector("#link-notice");
      expect(await page.$eval("#link-notice", (e) => e.textContent)).toMatch(/already used/);
      expect(await stored()).toBe(held);
      expect(held).not.toBeNull();
      await page.waitForSelector("#whoami");
      await page.goto(`${httpUrl}/#queue`);
      await page.waitForSelector(`tr[data-task="${queuedId}"]`, { timeout: 15_000 });
      expect(await page.$("#link-notice")).toBeNull();
      await page.close();
    }, 90_000);
  });
});
