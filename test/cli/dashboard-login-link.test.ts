import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { SCREENSHOTS } from "../helpers/screenshots.js";
import { tempDir } from "../helpers/temp-dir.js";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const SHOTS = new URL(`../../${SCREENSHOTS}`, import.meta.url).pathname;
const TOKEN_KEY = "coderclaw.token";
/** axe-core from node_modules, evaluated in the page (Runtime.evaluate is not subject to its CSP). */
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");

/**
 * Login CSRF through a login link: anyone holding a token of the node can mint a link
 * to their own session and send it to someone else. The page must never put a tab into
 * that session unasked, and must name it before anything is shown or typed in it.
 */
describe("dashboard login links against a real node", () => {
  const home = tempDir("cc-dash-link-");
  let node: Awaited<ReturnType<typeof startCli>>;
  let httpUrl: string;
  let idA: string;
  let adminToken: string;
  /** The other holder: user bob, read-only. */
  let bobToken: string;

  beforeAll(async () => {
    assertBuilt();
    expect((await runCli(["mesh", "create", "--name", "dashboard"], home.path)).code).toBe(0);
    node = await startCli(["start", "--no-mdns", "--http", "127.0.0.1:0"], home.path, /control socket/);
    httpUrl = /http (http:\/\/\S+)/.exec(node.output())![1]!;
    idA = (JSON.parse((await runCli(["id", "--json"], home.path)).stdout) as { deviceId: string }).deviceId;
    adminToken = (await runCli(["session", "create"], home.path)).stdout.trim();
    expect((await runCli(["roles", "grant", "bob", "developer"], home.path)).code).toBe(0);
    const bob = await runCli(["session", "create", "--user", "bob", "--read-only", "--json"], home.path);
    expect(bob.code, bob.stderr).toBe(0);
    bobToken = (JSON.parse(bob.stdout) as { token: string }).token;
  }, 60_000);
  afterAll(async () => {
    await node?.stop();
    home.remove();
  });

  it("GET /v1/session says whether the session is read-only", async () => {
    const session = async (token: string): Promise<unknown> => (await fetch(`${httpUrl}/v1/session`, { headers: { authorization: `Bearer ${token}` } })).json();
    expect(await session(bobToken)).toEqual({ userId: "bob", roles: ["developer"], readOnly: true, may: { submit: false, cancel: false, approve: false, admin: false } });
    expect(await session(adminToken)).toMatchObject({ userId: idA, roles: ["admin"], readOnly: false, may: { admin: true } });
  });

  describe.skipIf(CHROMIUM === undefined)("in Chromium", () => {
    let browser: Browser;
    beforeAll(async () => {
      mkdirSync(SHOTS, { recursive: true });
      browser = await puppeteer.launch({ executablePath: CHROMIUM!, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
    }, 60_000);
    afterAll(async () => {
      await browser?.close();
    });

    /** A login link to `token`'s session, as anyone holding it can mint one. */
    const linkTo = async (token: string): Promise<string> => {
      const response = await fetch(`${httpUrl}/ui/login-link`, { method: "POST", headers: { authorization: `Bearer ${token}` } });
      expect(response.status).toBe(200);
      return `${httpUrl}/#login=${((await response.json()) as { code: string }).code}`;
    };
    /** Opens a new link to bob's session in `page`, and waits for the page to ask about it. */
    const openBobsLink = async (page: Page): Promise<void> => {
      await page.goto(await linkTo(bobToken));
      await page.waitForSelector("#link-offered", { timeout: 10_000 });
    };
    /** Waits for `page` to be in bob's session: named in the header, its token the tab's. */
    const inBobsSession = async (page: Page): Promise<void> => {
      await page.waitForFunction(`document.getElementById("whoami")?.textContent === "bob: developer (read-only)"`, { timeout: 10_000 });
      expect(await stored(page)).toBe(bobToken);
    };
    const whoami = (page: Page): Promise<string> => page.evaluate(`document.getElementById("whoami")?.textContent ?? ""`) as Promise<string>;
    const stored = (page: Page): Promise<string | null> => page.evaluate(`sessionStorage.getItem(${JSON.stringify(TOKEN_KEY)})`) as Promise<string | null>;
    const text = (page: Page, selector: string): Promise<string> => page.$eval(selector, (e) => e.textContent ?? "");
    /** The serious and critical axe-core violations of what `page` shows. */
    const axeViolations = async (page: Page): Promise<string[]> => {
      await page.evaluate(AXE);
      return page.evaluate(`axe.run(document, { resultTypes: ["violations"] }).then((r) => r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id))`) as Promise<string[]>;
    };

    it("a tab logged in as the admin asks before following bob's link, naming both sessions: kept, it still acts as the admin; switched, it names bob", async () => {
      const page = await browser.newPage();
      await page.setViewport({ width: 1200, height: 900 });
      await page.goto(`${httpUrl}/`);
      await page.waitForSelector("#token");
      await page.type("#token", adminToken);
      await page.click("form.login button[type=submit]");
      await page.waitForFunction(`document.getElementById("whoami")?.textContent === ${JSON.stringify(`${idA}: admin`)}`);
      // The user line is in the page's header, beside Log out, whatever the view.
      expect(await page.$eval("header", (h) => h.textContent ?? "")).toContain(`${idA}: admin`);

      // Only the fragment changes: the same document, where the old page swapped sessions on the hash.
      await openBobsLink(page);
      expect(await text(page, "#link-offered")).toBe("bob: developer (read-only)");
      expect(await text(page, "#link-current")).toBe(`${idA}: admin`);
      // Nothing is done in bob's session while the page asks: the tab still holds the admin's token, and no view shows.
      expect(await stored(page)).toBe(adminToken);
      expect(await page.$("nav[role=tablist]")).toBeNull();
      await page.screenshot({ path: join(SHOTS, "login-link-switch.png"), fullPage: true });
      expect(await axeViolations(page)).toEqual([]);

      await page.click("::-p-text(Keep my session)");
      await page.waitForSelector("nav[role=tablist]");
      expect(await whoami(page)).toBe(`${idA}: admin`);
      expect(await stored(page)).toBe(adminToken);
      // What only the admin may do still works from this tab: an invite.
      await page.goto(`${httpUrl}/#devices`);
      await (await page.waitForSelector("::-p-text(Create invite)"))!.click();
      await page.waitForSelector("svg.qr path", { timeout: 10_000 });
      expect(await whoami(page)).toBe(`${idA}: admin`);

      await openBobsLink(page);
      await page.click("::-p-text(Switch session)");
      await inBobsSession(page);
      await page.close();
    }, 60_000);

    it("a fresh tab opening bob's link names bob's session before any dashboard data; declined, it stays logged out; continued, it is bob's", async () => {
      const page = await browser.newPage();
      const asked: string[] = [];
      page.on("request", (r) => void asked.push(`${r.method()} ${new URL(r.url()).pathname}`));
      await openBobsLink(page);
      expect(await text(page, "#link-offered")).toBe("bob: developer (read-only)");
      expect(await page.$("#link-current")).toBeNull();
      expect(await page.$("nav[role=tablist]")).toBeNull();
      expect(await stored(page)).toBeNull();
      // The code's exchange and who the session is: nothing else of the node's API was asked.
      expect(asked.filter((r) => !r.includes(" /ui/") && r !== "GET /")).toEqual(["GET /v1/session"]);
      expect(asked).toContain("POST /ui/login");
      await page.screenshot({ path: join(SHOTS, "login-link-fresh.png"), fullPage: true });
      expect(await axeViolations(page)).toEqual([]);

      await page.click("::-p-text(Don't log in)");
      await page.waitForSelector("#token");
      expect(await stored(page)).toBeNull();
      expect(await page.$("nav[role=tablist]")).toBeNull();
      expect(asked.filter((r) => r.includes(" /v1/"))).toEqual(["GET /v1/session"]);

      await openBobsLink(page);
      await page.click("::-p-text(Continue)");
      await inBobsSession(page);
      await page.close();
    }, 60_000);
  });
});
