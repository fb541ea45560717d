import * as A from "@automerge/automerge";
import { afterEach, describe, expect, it } from "vitest";
import { createNode, type CoderClawNode, type NodeOptions } from "../../node/create-node.js";
import { statementItem } from "../../node/mesh/membership.js";
import { policyTextHash } from "../../src/security/index.js";
import { signedPatch } from "../../node/sync/index.js";
import { encodeFrame } from "../../protocols/framing/index.js";
import { createStatementsCodec, STATEMENTS_PROTOCOL, type StatementsMessage } from "../../protocols/statements/index.js";
import { createSyncCodec, signHeads, SYNC_PROTOCOL, type SyncMessage } from "../../protocols/sync/index.js";
import { createBuiltinRegistry } from "../../src/agents/builtin.js";
import { eventually, openRawStream } from "../helpers/mesh.js";
import { tempDir } from "../helpers/temp-dir.js";

/**
 * Attack table, trust: a `verified` member M tries to rewrite the mesh's signed
 * statements (remove a revocation, remove a member's certificate, replace a
 * policy's text), by the old way (an Automerge change to the document the
 * statements used to live in) and over the statements protocol. Real nodes on
 * 127.0.0.1 with LevelDB homes and restarts.
 */
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Name = "f" | "a" | "b" | "m" | "r";
type Nodes = Record<Name, CoderClawNode>;

function options(home: string): NodeOptions {
  return { dataDir: home, mdns: false, agents: createBuiltinRegistry(), leaseIntervalMs: 200, leaseTimeoutMs: 1500, inboundConnectionThreshold: 100 };
}

/** F founds; A and B are trusted, M and R verified. B is connected to A only: two hops from F. */
async function mesh(): Promise<{ n: Nodes; homes: Record<Name, string>; links: Array<[Name, Name]> }> {
  const names: Name[] = ["f", "a", "b", "m", "r"];
  const dirs = Object.fromEntries(names.map((k) => [k, tempDir(`cc-trust-${k}-`)])) as Record<Name, ReturnType<typeof tempDir>>;
  cleanups.push(() => Object.values(dirs).forEach((d) => d.remove()));
  const n = {} as Nodes;
  for (const k of names) n[k] = await createNode(options(dirs[k].path));
  cleanups.push(async () => void (await Promise.allSettled(Object.values(n).map((x) => x.stop()))));
  await n.f.createMesh("trust table");
  for (const [k, level] of [["a", "trusted"], ["b", "trusted"], ["m", "verified"], ["r", "verified"]] as const) {
    const { invite } = await n.f.pairing.invite(level, 60_000);
    await n[k].pairing.join(invite);
  }
  // B paired through F, then keeps to A: whatever reaches B from F goes through A.
  await n.b.libp2p.hangUp(n.f.libp2p.peerId);
  n.b.block(n.f.peerId);
  n.f.block(n.b.peerId);
  const links: Array<[Name, Name]> = [["f", "a"], ["f", "m"], ["f", "r"], ["a", "b"], ["a", "m"], ["a", "r"], ["b", "m"], ["b", "r"], ["m", "r"]];
  for (const [x, y] of links) await n[x].dial(n[y].multiaddrs()[0]!);
  const all = Object.values(n);
  await eventually(() => all.every((x) => all.every((y) => x.membership.isMember(y.peerId))), 15_000, "every node knows every member");
  return { n, homes: Object.fromEntries(names.map((k) => [k, dirs[k].path])) as Record<Name, string>, links };
}

async function send<T>(from: CoderClawNode, to: CoderClawNode, protocol: string, codec: { encode(m: T): Uint8Array; maxMessageBytes: number }, messages: T[]): Promise<void> {
  const stream = await openRawStream(from, to, protocol);
  for (const m of messages) stream.send(encodeFrame(codec.encode(m), codec.maxMessageBytes));
}

async function audited(node: CoderClawNode, action: string, sender: string): Promise<boolean> {
  return (await node.security.current.getAuditLog({ action, result: "denied" })).some((e) => e.body.userId === sender);
}

/** The old way: an Automerge change to the document statements used to live in, pushed over sync. */
async function legacyDocumentEdit(m: CoderClawNode, to: CoderClawNode, edit: (d: { s: Record<string, Uint8Array> }) => void): Promise<void> {
  // Modified code runs no honest sync beside its forgeries (it would replace the raw stream before it is read).
  await m.sync.stop();
  const doc = A.change(A.from<{ s: Record<string, Uint8Array> }>({ s: Object.fromEntries(m.membership.statements().map((s) => [s.id, s.bytes])) }), edit);
  const heads = A.getHeads(doc);
  await send<SyncMessage>(m, to, SYNC_PROTOCOL, createSyncCodec(), [{ t: "patch", items: [signedPatch("mesh/statements", [], A.save(doc), signHeads(m.identity, "mesh/statements", heads))] }]);
}

describe("attack table: trust", () => {
  it("a revocation takes effect where it arrives, two hops away, without restart; a member can remove neither it nor a certificate, the old way or the new, before or after restarts", async () => {
    const { n, homes } = await mesh();
    const revocation = await n.f.membership.revoke(n.r.peerId, "lost laptop");
    // Two hops: F -> A -> B, and B cuts R off at once.
    await eventually(() => n.b.membership.isRevoked(n.r.peerId), 10_000, "B holds the revocation");
    await eventually(() => n.b.libp2p.getConnections(n.r.libp2p.peerId).length === 0, 10_000, "B cut R off");
    const aCert = n.f.membership.statements().find((s) => s.kind === "trust-cert" && (s.body as { subject: string }).subject === n.a.peerId)!;

    // The old way: M deletes the revocation and A's certificate from the document and pushes the change.
    for (const to of [n.a, n.b]) {
      await legacyDocumentEdit(n.m, to, (d) => {
        delete d.s[revocation.id];
        delete d.s[aCert.id];
      });
      // Under a full suite's load the refusal and its audit entry have taken over 10 s to land.
      await eventually(() => audited(to, "sync.refused", n.m.peerId), 30_000, "legacy edit refused and audited");
    }
    // The new way has no removal: the codec refuses anything but have, ids and items.
    expect(() => createStatementsCodec().decode(createSyncCodec().encode({ t: "want", items: [] }))).toThrow();

    for (const k of ["a", "b"] as const) {
      await n[k].stop();
      const fresh = await createNode(options(homes[k]));
      n[k] = fresh;
      cleanups.push(() => fresh.stop());
    }
    for (const k of ["a", "b"] as const) {
      expect(n[k].membership.isRevoked(n.r.peerId)).toBe(true);
      expect(n[k].membership.isMember(n.a.peerId)).toBe(true);
    }
  }, 120_000);

  it("a member cannot replace a policy's text or slip in a forged statement: refused and audited naming it; the policy still holds after restarts", async () => {
    const { n, homes } = await mesh();
    const policy = "skills:\n  shell-exec:\n    dangerous: true\ndeniedSkills: [shell-exec]\n";
    await n.f.security.signPolicy("repo", policy);
    for (const k of ["a", "b"] as const) await eventually(() => n[k].statementSet.text(policyTextHash(policy)) === policy, 10_000, `${k} holds the policy text`);

    const codec = createStatementsCodec();
    const forgedText = Buffer.from("deniedSkills: []\n");
    const cert = n.f.membership.statements().find((s) => s.kind === "trust-cert")!;
    const edited = new Uint8Array(cert.bytes);
    edited[edited.length - 1] = edited[edited.length - 1]! ^ 1;
    const items: StatementsMessage = {
      t: "items",
      items: [
        { id: policyTextHash(policy), kind: "text", bytes: forgedText },
        { ...statementItem(cert), id: cert.id, bytes: edited },
      ],
    };
    for (const to of [n.a, n.b]) {
      await n.m.statements.stop();
      await send<StatementsMessage>(n.m, to, STATEMENTS_PROTOCOL, codec, [items]);
      await eventually(() => audited(to, "statements.refused", n.m.peerId), 10_000, "refused and audited");
      expect(to.statementSet.text(policyTextHash(policy))).toBe(policy);
    }
    await n.a.stop();
    const fresh = await createNode(options(homes.a));
    n.a = fresh;
    cleanups.push(() => fresh.stop());
    expect(n.a.statementSet.text(policyTextHash(policy))).toBe(policy);
    expect(n.a.statementSet.has(cert.id)).toBe(true);
  }, 120_000);
});
