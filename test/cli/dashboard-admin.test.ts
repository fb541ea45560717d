import { ClassicLevel } from "classic-level";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { Level } from "level";
// jsqr is CommonJS: its function is module.exports and, as TypeScript sees it, `default` of that.
import jsQR from "jsqr";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseInvite } from "../../identity/index.js";
import { assertBuilt, runCli, startCli } from "../helpers/cli.js";
import { openLoginLink } from "../helpers/dashboard.js";
import { eventually } from "../helpers/mesh.js";
import { SCREENSHOTS } from "../helpers/screenshots.js";
import { tempDir } from "../helpers/temp-dir.js";
import { flipResult, tamperSegment } from "../security/helpers.js";

const CHROMIUM = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => existsSync(p));
const SHOTS = new URL(`../../${SCREENSHOTS}`, import.meta.url).pathname;

type Started = Awaited<ReturnType<typeof startCli>>;

/** The pixels of a PNG (base64), as the page's own image decoder sees them: RGBA, base64. */
const PNG_PIXELS = `async (png) => {
  const image = new Image();
  image.src = "data:image/png;base64," + png;
  await image.decode();
  const canvas = document.createElement("canvas");
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.drawImage(image, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let binary = "";
  for (let i = 0; i < rgba.length; i += 0x8000) binary += String.fromCharCode(...rgba.subarray(i, i + 0x8000));
  return { width: canvas.width, height: canvas.height, pixels: btoa(binary) };
}`;

/** Decodes the QR code `selector` shows: its screenshot (what the screen has), read by jsQR. */
async function readQr(page: Page, selector: string): Promise<string> {
  const png = await (await page.$(selector))!.screenshot({ encoding: "base64" });
  const { width, height, pixels } = (await page.evaluate(`(${PNG_PIXELS})(${JSON.stringify(png)})`)) as { width: number; height: number; pixels: string };
  const code = jsQR.default(new Uint8ClampedArray(Buffer.from(pixels, "base64")), width, height);
  if (code === null) throw new Error(`no QR code found in ${selector} (${width}x${height})`);
  return code.data;
}

/** axe-core from node_modules, evaluated in the page: nothing fetched from elsewhere. */
const AXE = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const VIEWS = ["tasks", "queue", "approvals", "mesh", "devices", "audit", "workflows"] as const;

/**
 * Mesh, Devices and audit verification in the dashboard of a real node, with a second real node paired from it.
 */
describe.skipIf(CHROMIUM === undefined)("dashboard admin views against real nodes", () => {
  const homeA = tempDir("cc-dash-a-");
  const homeB = tempDir("cc-dash-b-");
  const homeC = tempDir("cc-dash-c-");
  let a: Started;
  let httpUrl: string;
  let browser: Browser;
  let idB: string;
  /** The comparison code B's `mesh join` printed. */
  let code: string;
  const cleanups: Array<() => Promise<unknown>> = [];

  /** A's mesh port, kept across its restarts: an invite made before one names it. */
  let portA = 0;
  const startA = async (): Promise<void> => {
    a = await startCli(["start", "--no-mdns", "--listen", `/ip4/127.0.0.1/tcp/${portA}`, "--http", "127.0.0.1:0"], homeA.path, /control socket/);
    httpUrl = /http (http:\/\/\S+)/.exec(a.output())![1]!;
    portA = Number(/listening \/ip4\/127\.0\.0\.1\/tcp\/(\d+)/.exec(a.output())![1]);
  };
  const asAdmin = async (view: string): Promise<Page> => {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    await openLoginLink(page, (await runCli(["ui", "--url", httpUrl], homeA.path)).stdout.trim());
    await page.waitForSelector("nav[role=tablist]");
    await page.goto(`${httpUrl}/#${view}`);
    return page;
  };
  const shot = (page: Page, name: string): Promise<unknown> => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  const api = async (path: string, token: string, body?: unknown): Promise<Response> =>
    fetch(`${httpUrl}${path}`, { method: body === undefined ? "GET" : "POST", headers: { authorization: `Bearer ${token}`, ...(body !== undefined && { "content-type": "application/json" }) }, ...(body !== undefined && { body: JSON.stringify(body) }) });

  beforeAll(async () => {
    assertBuilt();
    mkdirSync(SHOTS, { recursive: true });
    expect((await runCli(["mesh", "create", "--name", "dashboard"], homeA.path)).code).toBe(0);
    await startA();
    const b = await startCli(["start", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"], homeB.path, /control socket/);
    cleanups.push(() => b.stop());
    idB = (JSON.parse((await runCli(["id", "--json"], homeB.path)).stdout) as { deviceId: string }).deviceId;
    browser = await puppeteer.launch({ executablePath: CHROMIUM!, headless: true, args: ["--no-sandbox", "--disable-gpu"] });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await a?.stop();
    for (const cleanup of cleanups.reverse()) await cleanup();
    homeA.remove();
    homeB.remove();
    homeC.remove();
  });

  it("pairs a second node from the dashboard's invite (QR code shown) and shows it as a direct member", async () => {
    const page = await asAdmin("devices");
    // The write buttons appear once the node has said what this session may do.
    await (await page.waitForSelector("::-p-text(Create invite)"))!.click();
    await page.waitForSelector("svg.qr path");
    const invite = await page.$eval("#invite-text", (t) => (t as unknown as { value: string }).value);
    await shot(page, "devices-invite");
    // The QR code as drawn, read back by a decoder: B joins with what a phone camera would read.
    const scanned = await readQr(page, "svg.qr");
    expect(scanned).toBe(invite);
    const idA = (JSON.parse((await runCli(["id", "--json"], homeA.path)).stdout) as { deviceId: string }).deviceId;
    expect(parseInvite(scanned)).toMatchObject({ inviter: idA, level: "verified" });
    const joined = await runCli(["mesh", "join", scanned], homeB.path);
    expect(joined.code, joined.stderr).toBe(0);
    expect(joined.stdout).toMatch(/comparison code/);

    await page.waitForSelector(`tr[data-device="${idB}"]`, { timeout: 20_000 });
    code = /comparison code (\S+)/.exec(joined.stdout)![1]!;
    expect(await page.$eval(`tr[data-device="${idB}"] td.code`, (td) => td.textContent)).toBe(code);
    // B names itself (its hostname) as it joins; the name reaches A and shows beside its id.
    await page.waitForFunction(`(document.querySelector('tr[data-device="${idB}"] td.name')?.textContent ?? "") !== ""`, { timeout: 20_000 });
    await page.goto(`${httpUrl}/#mesh`);
    // The row fills in as B's signed capability record arrives.
    await page.waitForFunction(`(document.querySelector('tr[data-member="${idB}"] td:nth-child(7)')?.textContent ?? "") !== ""`, { timeout: 20_000 });
    const row = await page.$eval(`tr[data-member="${idB}"]`, (tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent));
    // A verified invite gives the ci role; B's record offers slots (its default concurrency, nothing running).
    expect(row.slice(1, 4)).toEqual(["verified", "ci", "direct"]);
    expect(Number(row[6])).toBeGreaterThan(0);
    // A listens on loopback only: no member can be asked, and the page says why rather than "unknown".
    expect(await page.$eval("#reachability", (dd) => dd.textContent)).toBe("this machine only (listens on loopback)");
    await shot(page, "mesh-member");
    await page.close();
  }, 90_000);

  it("a paired device made read-only with `coderclaw roles` sees no write button, and the node refuses each of its 13 write routes and both audit reads (403), auditing each", async () => {
    // B joined as verified, which gave it ci; the admin makes it read-only.
    expect((await runCli(["roles", "grant", idB, "readonly"], homeA.path)).code).toBe(0);
    expect((await runCli(["roles", "revoke", idB, "ci", "--reason", "read only from now on"], homeA.path)).code).toBe(0);
    const reader = JSON.parse((await runCli(["session", "create", "--user", idB, "--json"], homeA.path)).stdout) as { token: string; id: string; roles: string[] };
    expect(reader.roles).toEqual(["readonly"]);
    const admin = (await runCli(["session", "create"], homeA.path)).stdout.trim();
    // What a reader could act on: a task running in its session, and a workflow step waiting for a decision.
    const submitted = await api("/v1/tasks?route=local", admin, { description: "a long wait", input: "60000", agentId: "sleep", sessionId: reader.id });
    expect(submitted.status).toBe(201);
    const taskId = ((await submitted.json()) as { id: string }).id;
    const workflow = ["name: held", "steps:", "  - id: deploy", "    agent: echo", "    input: deploy", "    approval: required", ""].join("\n");
    const held = await api("/v1/workflows", admin, { workflow });
    expect(held.status).toBe(201);
    const workflowId = ((await held.json()) as { id: string }).id;
    let requestId = "";
    await eventually(async () => {
      const { approvals } = (await (await api("/v1/approvals", admin)).json()) as { approvals: Array<{ request: { id: string } }> };
      requestId = approvals[0]?.request.id ?? "";
      return requestId !== "";
    }, 15_000, "the held step asks for a decision");

    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 900 });
    await page.goto(`${httpUrl}/`);
    await page.waitForSelector("#token");
    await page.type("#token", reader.token);
    await page.click("form.login button[type=submit]");
    // The buttons follow what the node said this session may do: wait for that answer before looking for them.
    await page.waitForFunction(`document.getElementById("whoami")?.textContent === ${JSON.stringify(`${idB}: readonly`)}`);
    const writeButtons = (): Promise<string[]> => page.$$eval("main button", (bs) => bs.map((b) => b.textContent ?? "").filter((t) => /Revoke|invite|Cancel|Retry|Approve|Deny/i.test(t)));
    await page.goto(`${httpUrl}/#devices`);
    await page.waitForSelector(`tr[data-device="${idB}"]`);
    expect(await writeButtons()).toEqual([]);
    await page.goto(`${httpUrl}/#approvals`);
    // The held step is of the admin's workflow, which the reader may neither read nor decide: it is not shown.
    await page.waitForSelector("::-p-text(Nothing waits for a decision)", { timeout: 15_000 });
    expect(await page.$$("article[data-approval]")).toEqual([]);
    await page.goto(`${httpUrl}/#task/${taskId}`);
    await page.waitForFunction(`document.getElementById("task-status")?.textContent === "running"`, { timeout: 15_000 });
    expect(await writeButtons()).toEqual([]);
    await shot(page, "read-only-task");

    const writes: Array<[string, unknown]> = [
      ["/v1/tasks", { description: "not mine to start", input: "x", agentId: "echo" }],
      ["/v1/workflows", { workflow }],
      [`/v1/workflows/${workflowId}/cancel`, {}],
      [`/v1/devices/${idB}/revoke`, { reason: "x" }],
      [`/v1/devices/${idB}/trust`, { level: "trusted" }],
      ["/v1/invites", { level: "trusted" }],
      [`/v1/tasks/${taskId}/cancel`, {}],
      [`/v1/tasks/${taskId}/retry`, {}],
      [`/v1/approvals/${requestId}/approve`, { reason: "x" }],
      [`/v1/approvals/${requestId}/deny`, { reason: "x" }],
      [`/v1/task-approvals/${taskId}/approve`, {}],
      [`/v1/task-approvals/${taskId}/deny`, {}],
    ];
    for (const [path, body] of writes) expect((await api(path, reader.token, body)).status, path).toBe(403);
    expect((await api("/v1/audit/verify", reader.token)).status).toBe(403);
    expect((await api("/v1/audit", reader.token)).status).toBe(403);
    // Each refusal is in the node's audit log under the action it refused, with the reader as its user.
    const denied = (await (await api(`/v1/audit?userId=${idB}&result=denied`, admin)).json()) as { entries: Array<{ body: { action: string } }> };
    expect(denied.entries.map((e) => e.body.action).sort()).toEqual(["approval.decide", "approval.decide", "approval.decide", "approval.decide", "audit.query", "audit.verify", "mesh.invite", "task.cancel", "task.cancel", "task.submit", "task.submit", "task.submit", "trust.certify", "trust.revoke"]);
    // Nothing changed: B is still a member, the task runs, the step still waits, nothing new started.
    const devices = (await (await api("/v1/devices", admin)).json()) as { devices: Array<{ deviceId: string; revoked?: boolean; level: string }> };
    expect(devices.devices.find((d) => d.deviceId === idB)).toMatchObject({ revoked: false, level: "verified" });
    expect(((await (await api(`/v1/tasks/${taskId}`, admin)).json()) as { status: string }).status).toBe("running");
    expect(((await (await api("/v1/approvals", admin)).json()) as { approvals: Array<{ request: { id: string } }> }).approvals.map((x) => x.request.id)).toEqual([requestId]);
    const { workflows } = (await (await api("/v1/workflows", admin)).json()) as { workflows: Array<{ id: string; status: string; definition: { name: string } }> };
    expect(workflows.filter((w) => w.definition.name === "held").map((w) => [w.id, w.status])).toEqual([[workflowId, "running"]]);

    // The same task page for an admin has Cancel (so the checks above can fail); the admin clears what the reader could not.
    await page.click("::-p-text(Log out)");
    // Logged out for certain (the login form shown) before the link is opened: the link only changes the fragment of this page.
    await page.waitForSelector("#token");
    await openLoginLink(page, (await runCli(["ui", "--url", httpUrl], homeA.path)).stdout.trim());
    await page.waitForFunction(`/: admin/.test(document.getElementById("whoami")?.textContent ?? "")`);
    await page.goto(`${httpUrl}/#task/${taskId}`);
    // Cancel is disabled until the task has loaded: click it once the page shows the task running.
    await page.waitForFunction(`document.getElementById("task-status")?.textContent === "running"`, { timeout: 15_000 });
    await (await page.waitForSelector("::-p-text(Cancel task)"))!.click();
    await page.waitForFunction(`document.getElementById("task-status")?.textContent === "cancelled"`, { timeout: 15_000 });
    expect((await api(`/v1/approvals/${requestId}/deny`, admin, { reason: "not today" })).status).toBe(200);
    await page.close();
  }, 90_000);

  it("revokes the paired device with a reason and confirmation, and it is cut off", async () => {
    const page = await asAdmin("devices");
    await page.waitForSelector(`tr[data-device="${idB}"] button`);
    await page.click(`tr[data-device="${idB}"] button`);
    await page.type(`#reason-${idB}`, "laptop lost");
    await page.click("::-p-text(Confirm revoke)");
    await page.waitForFunction(`document.querySelector('tr[data-device="${idB}"] td:nth-child(3)')?.textContent === "revoked"`, { timeout: 15_000 });
    await shot(page, "devices-revoked");
    // Cut off: A drops B's connections and no longer lists it as a member.
    const token = (await runCli(["session", "create"], homeA.path)).stdout.trim();
    await eventually(async () => {
      const mesh = (await (await api("/v1/mesh", token)).json()) as { members: Array<{ peerId: string }> };
      return !mesh.members.some((m) => m.peerId === idB);
    }, 20_000, "B gone from A's members");
    // The HTTP decision is audited as the revocation it allowed (not as an audit query), beside the node's own record of it.
    const audited = (await (await api("/v1/audit?action=trust.revoke&result=allowed", token)).json()) as { entries: unknown[] };
    expect(audited.entries).toHaveLength(2);
    await page.close();
  }, 90_000);

  it("Approvals follows the node's event streams: a step asked while the page is open appears without a reload or a poll, and is approved with a reason", async () => {
    const token = (await runCli(["session", "create"], homeA.path)).stdout.trim();
    const page = await asAdmin("approvals");
    await page.waitForSelector("::-p-text(Nothing waits for a decision)", { timeout: 15_000 });
    // From here on: every request the page makes, and a mark that a reload would wipe.
    const requested: string[] = [];
    page.on("request", (r) => void requested.push(`${r.method()} ${new URL(r.url()).pathname}`));
    await page.evaluate("window.sameDocument = true");
    const workflow = ["name: gated", "steps:", "  - id: ship", "    agent: echo", "    input: ship it", "    approval: required", ""].join("\n");
    const started = await api("/v1/workflows", token, { workflow });
    expect(started.status).toBe(201);
    const { id } = (await started.json()) as { id: string };
    const article = await page.waitForSelector("article[data-approval]", { timeout: 15_000 });
    expect(await article!.evaluate((a) => a.textContent)).toMatch(/gated: step ship/);
    expect(await page.evaluate("window.sameDocument")).toBe(true);
    expect(requested).toEqual([]);
    await shot(page, "approvals");
    const requestId = await article!.evaluate((a) => a.getAttribute("data-approval"));
    await page.type("article[data-approval] input", "looks right");
    await page.click("article[data-approval] ::-p-text(Approve)");
    // Gone from the page by the stream's "decided", not by asking for the list again.
    await page.waitForSelector("::-p-text(Nothing waits for a decision)", { timeout: 15_000 });
    expect(requested).toEqual([`POST /v1/approvals/${requestId}/approve`]);
    type Record = { status: string; steps: { ship: { approval: { decision?: { approved: boolean; reason: string } } } } };
    let record: Record | undefined;
    await eventually(async () => {
      record = (await (await api(`/v1/workflows/${id}`, token)).json()) as Record;
      return record.status === "completed";
    }, 20_000, "the approved workflow completes");
    expect(record!.steps.ship.approval.decision).toMatchObject({ approved: true, reason: "looks right" });
    await page.close();
  }, 60_000);

  it("audit verification names the first tampered entry of the node's chain", async () => {
    const idA = (JSON.parse((await runCli(["id", "--json"], homeA.path)).stdout) as { deviceId: string }).deviceId;
    expect(await a.stop()).toBe(0);
    const db = new ClassicLevel<string, Uint8Array>(join(homeA.path, "db"), { keyEncoding: "utf8", valueEncoding: "view" });
    await tamperSegment(db as unknown as Level<string, Uint8Array>, idA, 0, (d) => flipResult(d, 0, 1, "denied"));
    await db.close();
    await startA();
    const page = await asAdmin("audit");
    await page.waitForSelector(`li[data-author="${idA}"]`, { timeout: 15_000 });
    expect(await page.$eval(`li[data-author="${idA}"]`, (li) => li.textContent)).toMatch(/first broken entry #1 .*edited/);
    expect(await page.$eval("#audit-verify", (p) => p.textContent)).toMatch(/1 broken/);
    await shot(page, "audit-tampered");
    await page.close();
  }, 90_000);

  it("a restart of the inviter keeps the comparison codes of past pairings, and an invite made before it still pairs after it", async () => {
    const before = (await runCli(["session", "create"], homeA.path)).stdout.trim();
    const made = await api("/v1/invites", before, { level: "verified" });
    expect(made.status).toBe(201);
    const { invite } = (await made.json()) as { invite: string };
    expect(await a.stop()).toBe(0);
    await startA();
    const token = (await runCli(["session", "create"], homeA.path)).stdout.trim();
    const codes = async (): Promise<Map<string, string | undefined>> =>
      new Map(((await (await api("/v1/devices", token)).json()) as { devices: Array<{ deviceId: string; comparisonCode?: string }> }).devices.map((d) => [d.deviceId, d.comparisonCode]));
    expect((await codes()).get(idB)).toBe(code);

    const c = await startCli(["start", "--no-mdns", "--listen", "/ip4/127.0.0.1/tcp/0"], homeC.path, /control socket/);
    cleanups.push(() => c.stop());
    const joined = await runCli(["mesh", "join", invite], homeC.path);
    expect(joined.code, joined.stderr).toBe(0);
    const idC = (JSON.parse((await runCli(["id", "--json"], homeC.path)).stdout) as { deviceId: string }).deviceId;
    expect((await codes()).get(idC)).toBe(/comparison code (\S+)/.exec(joined.stdout)![1]);
  }, 90_000);

  it("the login page and every view have no serious or critical axe-core violation, and each is photographed", async () => {
    const axeViolations = (page: Page): Promise<string[]> =>
      page.evaluate(`axe.run(document, { resultTypes: ["violations"] }).then((r) => r.violations.filter((v) => v.impact === "serious" || v.impact === "critical").map((v) => v.id + ": " + v.nodes.map((n) => n.target.join(" ")).join(", ")))`) as Promise<string[]>;
    const login = await browser.newPage();
    await login.goto(`${httpUrl}/`);
    await login.waitForSelector("#token");
    await login.evaluate(AXE);
    const found: Record<string, string[]> = {};
    const loginViolations = await axeViolations(login);
    if (loginViolations.length > 0) found.login = loginViolations;
    await shot(login, "login");
    await login.close();
    const page = await asAdmin("tasks");
    const submitted = await runCli(["task", "submit", "hello", "--agent", "echo", "--wait"], homeA.path);
    expect(submitted.code, submitted.stderr).toBe(0);
    const taskId = /[0-9a-f-]{36}/.exec(submitted.stdout + submitted.stderr)![0];
    // Runtime.evaluate is not subject to the page's CSP, so the strict policy stays as served.
    await page.evaluate(AXE);
    for (const view of [...VIEWS, `task/${taskId}`]) {
      await page.goto(`${httpUrl}/#${view}`);
      await page.waitForSelector("section[role=tabpanel] h2");
      // Let the first poll fill the view before it is checked.
      await page.waitForNetworkIdle({ idleTime: 300 });
      const violations = await axeViolations(page);
      if (violations.length > 0) found[view] = violations;
      await shot(page, view.startsWith("task/") ? "task" : view);
    }
    expect(found).toEqual({});
    await page.close();
  }, 90_000);
});
