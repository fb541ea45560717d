import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { HttpServer } from "../../node/http/index.js";
import { DASHBOARD_CSP } from "../../node/http/ui-routes.js";
import { openEngine, type Engine } from "./engine.js";
import type { CoderClawNode } from "../../node/index.js";
import type { TaskState } from "../../src/contract/types.js";
import { httpWorkflows } from "../../node/workflows/http-workflows.js";
import { checkWorkflow } from "../../src/workflows/index.js";
import { openLoginLink } from "../helpers/dashboard.js";
import { startNodes } from "../helpers/mesh.js";
import { SCREENSHOTS } from "../helpers/screenshots.js";
import { TOKENS, eventually, request, startServer } from "./helpers.js";

const SHOTS = new URL(`../../${SCREENSHOTS}`, import.meta.url).pathname;
const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const GATED = checkWorkflow({ name: "gated", steps: [{ id: "ship", agent: "echo", input: "ship ${input}", approval: "required" }] });

describe("dashboard routes", () => {
  let engine: Engine;
  let server: HttpServer;
  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter);
  });
  afterAll(async () => {
    await server.close();
    await engine.close();
  });

  it("serves the page and its assets with a strict CSP and no inline script", async () => {
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect(DASHBOARD_CSP).not.toMatch(/unsafe-inline|unsafe-eval/);
    const html = await page.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/);
    const js = await fetch(`${server.url}/ui/app.js`);
    expect(js.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(js.headers.get("content-security-policy")).toBe(DASHBOARD_CSP);
    expect((await fetch(`${server.url}/ui/secret.txt`)).status).toBe(404);
    expect((await fetch(`${server.url}/ui/..%2Fpackage.json`)).status).toBe(404);
  });

  it("a login link needs a valid token, works once, and never again", async () => {
    expect((await request(server.url, "POST", "/ui/login-link")).status).toBe(401);
    expect((await request(server.url, "POST", "/ui/login-link", { token: TOKENS.expired })).status).toBe(401);
    const link = await request(server.url, "POST", "/ui/login-link", { token: TOKENS.alice });
    expect(link.status).toBe(200);
    const { code } = link.body as { code: string };
    const body = JSON.stringify({ code });
    const headers = { "content-type": "application/json" };
    expect(await request(server.url, "POST", "/ui/login", { body, headers })).toMatchObject({ status: 200, body: { token: TOKENS.alice } });
    const again = await request(server.url, "POST", "/ui/login", { body, headers });
    expect(again.status).toBe(401);
    expect(JSON.stringify(again.body)).toMatch(/already used/);
    const bad = await request(server.url, "POST", "/ui/login", { body: JSON.stringify({ code: "x" }), headers });
    expect(bad.status).toBe(400);
    // What a page on another site can send without a preflight: a form post.
    for (const type of ["application/x-www-form-urlencoded", "text/plain"]) {
      expect((await request(server.url, "POST", "/ui/login", { body: `code=${code}`, headers: { "content-type": type } })).status).toBe(415);
    }
  });
});

describe("login link share", () => {
  it("gives one token at most 10 unused links, and another token its own", async () => {
    const { registerUiRoutes } = await import("../../node/http/ui-routes.js");
    const Fastify = (await import("fastify")).default;
    const app = Fastify();
    registerUiRoutes(app, { authenticate: () => ({}) });
    const link = (token: string) => app.inject({ method: "POST", url: "/ui/login-link", headers: { authorization: `Bearer ${token}` } });
    try {
      for (let i = 0; i < 10; i++) expect((await link("flooder")).statusCode).toBe(200);
      const refused = await link("flooder");
      // A bare Fastify here: the node's error handler makes it a 503.
      expect(refused.statusCode).not.toBe(200);
      expect(refused.body).toMatch(/this token has 10 unused login links/);
      expect((await link("coderclaw-ui")).statusCode).toBe(200);
    } finally {
      await app.close();
    }
  });
});

describe("login link expiry", () => {
  it("refuses a code past its 60 s", async () => {
    let clock = Date.now();
    const { registerUiRoutes } = await import("../../node/http/ui-routes.js");
    const Fastify = (await import("fastify")).default;
    const app = Fastify();
    registerUiRoutes(app, { authenticate: () => ({}), now: () => clock });
    try {
      const link = await app.inject({ method: "POST", url: "/ui/login-link", headers: { authorization: "Bearer any" } });
      const { code } = link.json<{ code: string }>();
      clock += 60_001;
      const late = await app.inject({ method: "POST", url: "/ui/login", payload: { code } });
      expect(late.statusCode).not.toBe(200);
      expect(late.body).toMatch(/expired/);
    } finally {
      await app.close();
    }
  });
});

describe.skipIf(CHROMIUM === undefined)("dashboard in Chromium", () => {
  let engine: Engine;
  let server: HttpServer;
  let browser: Browser;
  const consoleErrors: string[] = [];

  beforeAll(async () => {
    engine = await openEngine();
    server = await startServer(engine.adapter, {
      // The Audit view also asks for chain verification; the node side runs for real in test/cli/dashboard-admin.test.ts.
      admin: async (method) => (method === "audit.verify" ? { ok: true, authors: 1, entries: 1, problems: [], forks: [] } : {}),
      audit: (query) => [{ timestamp: "2026-12-05T04:00:00.000Z", userId: query.userId ?? "root", action: "task.submit", result: "allowed" }],
    });
    browser = await puppeteer.launch({ executablePath: CHROMIUM!, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server.close();
    await engine.close();
  });

  async function open(width = 1200): Promise<Page> {
    const page = await browser.newPage();
    await page.setViewport({ width, height: 800 });
    page.on("console", (m) => {
      if (m.type() === "error") consoleErrors.push(m.text());
    });
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    return page;
  }

  async function logIn(page: Page, token: string): Promise<void> {
    await page.goto(`${server.url}/`);
    await page.waitForSelector("#token");
    await page.type("#token", token);
    await page.click("form.login button[type=submit]");
    await page.waitForSelector("nav[role=tablist]");
  }

  it("logs in with a one-time link, shows a task appear live, and cancels it", async () => {
    const page = await open();
    const link = await request(server.url, "POST", "/ui/login-link", { token: TOKENS.alice });
    await openLoginLink(page, `${server.url}/#login=${(link.body as { code: string }).code}`);
    await page.waitForSelector("table[aria-label=Tasks]");
    const id = await engine.startManual("s-alice");
    await page.waitForSelector(`tr[data-task="${id}"]`, { timeout: 10_000 });
    await page.click(`tr[data-task="${id}"] a`);
    await page.waitForFunction(`document.getElementById("task-status")?.textContent === "running"`, { timeout: 10_000 });
    await page.click("::-p-text(Cancel task)");
    await eventually(async () => (await engine.adapter.getTaskState(id))?.status === "cancelled");
    await page.waitForFunction(`document.getElementById("task-status")?.textContent === "cancelled"`, { timeout: 10_000 });
    await page.close();
  }, 60_000);

  it("reaches every one of 10,000 tasks with a bounded DOM: the oldest by scrolling, a row in view far down updated, an old one by a filter, a new one live", async () => {
    const submit = (description: string, agentId = "echo"): Promise<TaskState> => engine.adapter.submitTask({ description, input: agentId === "sleep" ? "1" : "x", agentId, sessionId: "s-alice" });
    const oldest = await submit("the oldest", "sleep");
    const held = await engine.startManual("s-alice");
    for (let i = 0; i < 10_000; i += 500) await Promise.all(Array.from({ length: 500 }, (_, k) => submit(`bulk ${i + k}`)));
    const page = await open();
    await logIn(page, TOKENS.alice);
    // Measured, not asserted: a reload (the token stays in the tab) until the first row shows.
    const started = performance.now();
    await page.reload();
    await page.waitForSelector("table[aria-label=Tasks] tbody tr[data-task]");
    console.log(`first render of the task list with 10,002 tasks: ${Math.round(performance.now() - started)} ms`);
    // Counted in the page: $$eval hands each row to this process and back, a few hundred CDP messages a call, once per page scrolled.
    const rows = async (): Promise<number> => (await page.evaluate(`document.querySelectorAll("table[aria-label=Tasks] tbody tr[data-task]").length`)) as number;
    let most = 0;
    // Scroll to the end until the node has no older page: the DOM must never hold more than a window of rows.
    for (;;) {
      const done = await page.evaluate(`(() => { const box = document.querySelector(".rows"); box.scrollTop = box.scrollHeight; return document.querySelector(\`tr[data-task="${oldest.id}"]\`) !== null; })()`);
      most = Math.max(most, await rows());
      if (done) break;
      await page.waitForFunction(`document.querySelector(".rows").scrollTop + document.querySelector(".rows").clientHeight < document.querySelector(".rows").scrollHeight - 40 || document.querySelector('tr[data-task="${oldest.id}"]') !== null`, { timeout: 20_000 });
    }
    expect(await page.$eval(".pager span", (e) => e.textContent)).toMatch(/^100[0-9][0-9] tasks$/);
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: join(SHOTS, "tasks-oldest-of-10000.png") });
    // A row in view far below the newest tasks changes with its task.
    const heldStatus = `document.querySelector('tr[data-task="${held}"] td:nth-child(2)')?.textContent`;
    expect(await page.evaluate(heldStatus)).toBe("running");
    engine.controller.complete(held);
    await page.waitForFunction(`${heldStatus} === "completed"`, { timeout: 10_000 });
    console.log(`most task rows in the DOM while scrolling: ${most}`);
    expect(most).toBeGreaterThan(10);
    expect(most).toBeLessThanOrEqual(60);
    // The agent filter is not indexed: the node looks at each task, page by page, and still finds the oldest. Each page
    // loads up to 2,000 task documents, so at 10,000 tasks on a loaded machine this takes tens of seconds (measured, not asserted).
    await page.evaluate(`document.querySelector(".rows").scrollTop = 0`);
    const filtering = performance.now();
    await page.type("#filter-agent", "sleep");
    await page.keyboard.press("Tab");
    await page.waitForSelector(`tr[data-task="${oldest.id}"]`, { timeout: 90_000 });
    console.log(`agent filter over 10,002 tasks to the oldest: ${Math.round(performance.now() - filtering)} ms`);
    await page.waitForFunction(`document.querySelector(".pager span")?.textContent === "1 tasks"`, { timeout: 20_000 });
    const fresh = await submit("arrived after the page loaded", "sleep");
    await page.waitForSelector(`tr[data-task="${fresh.id}"]`, { timeout: 10_000 });
    expect(await rows()).toBe(2);
    await page.close();
  }, 300_000);

  it("fits a 390 px screen without sideways scrolling of the page", async () => {
    const page = await open(390);
    await logIn(page, TOKENS.alice);
    const width = (await page.evaluate("document.documentElement.scrollWidth")) as number;
    expect(width).toBeLessThanOrEqual(390);
    await page.close();
  }, 30_000);

  it("an expired session goes back to the login page", async () => {
    const page = await open();
    await logIn(page, TOKENS.alice);
    await page.evaluate(`sessionStorage.setItem("coderclaw.token", ${JSON.stringify(TOKENS.expired)})`);
    await page.waitForSelector("form.login [role=alert]", { timeout: 10_000 });
    expect(await page.$eval("form.login [role=alert]", (e) => e.textContent)).toMatch(/expired/);
    await page.close();
  }, 30_000);

  it("queries the audit log by user from the keyboard", async () => {
    const page = await open();
    await logIn(page, TOKENS.admin);
    await page.goto(`${server.url}/#audit`);
    await page.waitForSelector("table[aria-label='Audit entries'] tbody tr");
    await page.focus("#audit-userId");
    await page.keyboard.type("dora");
    await page.keyboard.press("Enter");
    await page.waitForFunction(`document.querySelector("table[aria-label='Audit entries'] tbody td:nth-child(2)")?.textContent === "dora"`);
    await page.close();
  }, 30_000);

  it("logged no console errors", () => {
    // The expired-session test's 401s are the browser's network log, not errors of the page.
    expect(consoleErrors.filter((e) => !/401/.test(e))).toEqual([]);
  });
});

describe.skipIf(CHROMIUM === undefined)("Approvals in Chromium when the stream is cut", () => {
  let node: CoderClawNode;
  let stopNodes: () => Promise<void>;
  let server: HttpServer;
  let browser: Browser;
  const serve = (port?: number): Promise<HttpServer> =>
    startServer(node.adapter, { workflows: httpWorkflows(node.workflows, node.core.store), subjectOf: (ctx) => ctx.userId, ...(port !== undefined && { port }) });

  beforeAll(async () => {
    const mesh = await startNodes(1);
    stopNodes = mesh.stop;
    node = mesh.nodes[0]!;
    server = await serve();
    browser = await puppeteer.launch({ executablePath: CHROMIUM!, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await server.close();
    await stopNodes();
  });

  async function loggedInAsAdmin(): Promise<Page> {
    const page = await browser.newPage();
    await page.goto(`${server.url}/`);
    await page.waitForSelector("#token");
    await page.type("#token", TOKENS.admin);
    await page.click("form.login button[type=submit]");
    await page.waitForSelector("nav[role=tablist]");
    return page;
  }

  it("reconnects with growing pauses while the server is away, and shows what was asked meanwhile without a reload", async () => {
    const page = await loggedInAsAdmin();
    await page.goto(`${server.url}/#approvals`);
    await page.waitForSelector("::-p-text(Nothing waits for a decision)");
    await page.evaluate("window.sameDocument = true");
    const attempts: string[] = [];
    page.on("request", (r) => void (new URL(r.url()).pathname === "/v1/approvals/events" && attempts.push(r.url())));

    // The server goes away (its streams end without an "end"), a step is asked meanwhile, and it comes back on the same port.
    const port = server.port;
    await server.close();
    const { id } = await node.workflows.startChecked(GATED, "v1");
    await eventually(() => node.workflows.approvals().length === 1);
    await new Promise((resolve) => setTimeout(resolve, 4000));
    const whileAway = attempts.length;
    server = await serve(port);

    const article = await page.waitForSelector("article[data-approval]", { timeout: 40_000 });
    expect(await article!.evaluate((a) => a.textContent)).toMatch(/gated: step ship/);
    expect(await page.evaluate("window.sameDocument")).toBe(true);
    // Pauses of 1, 2, 4 s (less a quarter at most): a handful of tries in 4 s, not a tight loop.
    expect(whileAway).toBeGreaterThanOrEqual(1);
    expect(whileAway).toBeLessThanOrEqual(4);
    await node.workflows.decide(node.workflows.approvals()[0]!.request.id, { approved: false, by: "root", reason: "done", at: Date.now() });
    await node.workflows.wait(id);
    await page.waitForSelector("::-p-text(Nothing waits for a decision)");
    await page.close();
  }, 90_000);

  it("a task page whose stream is cut opens it again after the last event it showed: every event once, the end seen", async () => {
    const page = await loggedInAsAdmin();
    const task = await node.adapter.submitTask({ description: "steps through a cut", input: "6000 6", agentId: "sleep" });
    await page.goto(`${server.url}/#task/${task.id}`);
    await page.waitForFunction(`document.querySelectorAll("ol[aria-label=Events] li").length >= 2`, { timeout: 20_000 });
    const port = server.port;
    await server.close();
    await new Promise((resolve) => setTimeout(resolve, 2500));
    server = await serve(port);
    await page.waitForFunction(`document.getElementById("task-status")?.textContent === "completed"`, { timeout: 40_000 });
    const events = [];
    for await (const e of node.adapter.streamTaskUpdates(task.id)) events.push(e);
    await page.waitForFunction(`document.querySelectorAll("ol[aria-label=Events] li").length >= ${events.length}`, { timeout: 10_000 });
    const shown = await page.$$eval("ol[aria-label=Events] li", (items) => items.map((li) => li.textContent));
    expect(shown).toHaveLength(events.length);
    expect(shown.at(-1)).toMatch(/completed/);
    await page.close();
  }, 90_000);
});

describe("first-load size", () => {
  it("stays small: HTML, CSS, the bundle and the chunks it imports at once, gzipped, as built", () => {
    const built = (f: string): Buffer => readFileSync(new URL(`../../dist/ui/${f}`, import.meta.url));
    // Static imports only: chunks behind import() (the QR encoder) load when a view needs them.
    const chunks = [...built("app.js").toString().matchAll(/\bfrom\s*"\.\/(chunk-[A-Z0-9]+\.js)"/g)].map((m) => m[1]!);
    expect(chunks.length).toBeGreaterThan(0);
    const bytes = ["index.html", "app.css", "app.js", ...chunks].reduce((n, f) => n + gzipSync(built(f)).byteLength, 0);
    expect(bytes).toBeLessThan(20_000);
  });
});
