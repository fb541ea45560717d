import "../src/polyfills.js";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { peerIdFromString } from "@libp2p/peer-id";
import { BLOB_CHUNK_BYTES } from "../protocols/blobs/messages.js";
import { createBuiltinRegistry } from "../src/agents/builtin.js";
import { createNode, type CoderClawNode } from "../node/create-node.js";
import { percentile, printResult, sized } from "./report.js";
import { RAW_SINK_PROTOCOL, rawSend, serveRawSink } from "./raw-echo.js";

/**
 * `npm run bench:registry`: one publisher and ten members in this process
 * (127.0.0.1). The publisher publishes a 5 MB skill; every member installs it
 * at once (fetch from the publisher, verify, write the folder, lock). Beside
 * it, in the same run: the same bytes copied over one raw libp2p stream from
 * the publisher to a member, once and ten times over (the faster of a copy
 * before and one after the installs counts).
 */

const MEMBERS = sized(10, 3);
const SKILL_BYTES = sized(5 * 1024 * 1024, 512 * 1024);
const round = (n: number): number => Math.round(n * 1000) / 1000;

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what} not reached within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const home = mkdtempSync(join(tmpdir(), "cc-bench-registry-"));
const nodes: CoderClawNode[] = [];
try {
  for (let i = 0; i <= MEMBERS; i++) nodes.push(await createNode({ dataDir: join(home, `n${i}`), mdns: false, agents: createBuiltinRegistry([]), inboundConnectionThreshold: 1000 }));
  const [publisher, ...members] = nodes as [CoderClawNode, ...CoderClawNode[]];
  await publisher.createMesh("bench");
  for (const m of members) {
    const { invite } = await publisher.pairing.invite("trusted", 60_000);
    await m.pairing.join(invite);
  }
  const folder = join(home, "skill");
  mkdirSync(folder);
  writeFileSync(join(folder, "SKILL.md"), "---\nname: payload\ndescription: a skill of 5 MB\n---\n");
  writeFileSync(join(folder, "payload.bin"), randomBytes(SKILL_BYTES));
  const t0 = performance.now();
  const pub = await publisher.registry.publishSkill(folder, "team/payload", "1.0.0");
  const publishMs = performance.now() - t0;
  await until(() => members.every((m) => m.registry.catalogue.list("skill").length === 1), 30_000, "the publication on every member");

  const sink = await serveRawSink(members[0]!.libp2p);
  const chunk = randomBytes(BLOB_CHUNK_BYTES);
  const raw = async (copies: number): Promise<number> => {
    sink.expect(SKILL_BYTES * copies);
    const stream = await publisher.libp2p.dialProtocol(peerIdFromString(members[0]!.peerId), RAW_SINK_PROTOCOL);
    const ms = await rawSend(stream, SKILL_BYTES * copies, chunk);
    await stream.close();
    return ms;
  };
  const rawOneBefore = await raw(1);
  const rawAllBefore = await raw(MEMBERS);

  const perMember: number[] = [];
  const start = performance.now();
  await Promise.all(
    members.map(async (m) => {
      const s = performance.now();
      await m.registry.installSkill("team/payload");
      perMember.push(performance.now() - s);
    }),
  );
  const installAllMs = performance.now() - start;
  const rawOneMs = Math.min(rawOneBefore, await raw(1));
  const rawAllMs = Math.min(rawAllBefore, await raw(MEMBERS));
  const fromPublisher = members.reduce((n, m) => n + m.blobs.client.counters(publisher.peerId).received, 0);

  printResult("registry", {
    members: MEMBERS,
    skillBytes: SKILL_BYTES,
    tree: pub.tree,
    publishMs: round(publishMs),
    installAllMs: round(installAllMs),
    installPerMemberMs: { p50: percentile(perMember, 50), max: percentile(perMember, 100) },
    rawStreamOneCopyMs: round(rawOneMs),
    rawStreamAllCopiesMs: round(rawAllMs),
    ratio: { installAllOverRawAllCopies: round(installAllMs / rawAllMs), installP50OverRawOneCopy: round(percentile(perMember, 50) / rawOneMs) },
    wireBytesFromPublisher: fromPublisher,
    wireOverhead: round(fromPublisher / (SKILL_BYTES * MEMBERS)),
  });
} finally {
  await Promise.all(nodes.map((n) => n.stop()));
  rmSync(home, { recursive: true, force: true });
}
