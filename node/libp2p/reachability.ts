import { connect, createServer, type Socket } from "node:net";
import { networkInterfaces } from "node:os";
import type { Connection, Libp2p, Stream } from "@libp2p/interface";
import { z } from "zod";
import { createMessageCodec, FramedChannel } from "../../protocols/framing/index.js";

/** Asks a member to dial this node back at its listen ports, and to tell what its connection looks like from outside. */
export const DIAL_BACK_PROTOCOL = "/coderclaw/dial-back/1.0.0";

/** A dial back, and the echo a port check connects to, give up after this. */
const PROBE_MS = 3000;
/** Members asked per check: the first that reaches this node settles it. */
const MEMBERS_ASKED = 3;
/** A result older than this is checked again. */
const RECHECK_MS = 5 * 60_000;
/** How often an unknown or old result is looked at (no member may have been asked: none was connected, or none a member yet). */
const LOOK_MS = 5000;

const requestSchema = z.strictObject({ ports: z.array(z.number().int().min(1).max(65_535)).min(1).max(4) });
const answerSchema = z.strictObject({
    /** The asker's address as the member sees it. */
    ip: z.ipv4(),
    /** For each port asked, whether a TCP connection to it at that address opened. */
    reached: z.array(z.boolean()).max(4),
    /** A port the member accepts one connection on for a moment, answering with the address and port it came from. */
    echoPort: z.number().int().min(1).max(65_535),
});
/** One codec for both directions: a stream carries one channel, whose decoder sees what either side sends. */
const dialBackCodec = createMessageCodec({ version: 1, schema: z.union([requestSchema, answerSchema]), maxMessageBytes: 128 });
const LOOPBACK: ReachabilityReport = { reachability: "loopback" };
const echoSchema = z.string().regex(/^\d{1,3}(\.\d{1,3}){3} \d{1,5}$/);

/** What this node knows of its reachability, as members see it. */
export interface ReachabilityReport {
  /**
   * public: a member opened a connection to a listen port; private: members tried and could not;
   * loopback: this node listens on loopback only, so only this machine can reach it (there is nothing to ask);
   * unknown: none asked yet.
   */
  reachability: "public" | "private" | "loopback" | "unknown";
  /** This node's address as the members asked see it. */
  observedIp?: string;
  /** The observed address is none of this machine's own: a NAT (or proxy) translates it. */
  translated?: boolean;
  /** A fresh connection kept its source port through the NAT (cone NATs do, symmetric ones do not); absent when untold. */
  portPreserving?: boolean;
  /** The member whose answer settled the result. */
  by?: string;
  /** When (ISO 8601). */
  checkedAt?: string;
}

/** Options of {@link startReachability}. */
export interface ReachabilityOptions {
  libp2p: Libp2p;
  /** Only members are answered, and only members are asked. */
  isMember: (peer: string) => boolean | Promise<boolean>;
  /** Told each time the result changes. */
  onChange?: (report: ReachabilityReport) => void;
}

/** A running {@link startReachability}. */
export interface Reachability {
  current(): ReachabilityReport;
  /** Ask members now. */
  check(): Promise<ReachabilityReport>;
  stop(): void;
}

/**
 * Learns whether members can open connections to this node, our own small
 * AutoNAT: a member dials back the address it sees the asker come from (only
 * that one, so no member can be made to connect to a third machine) at the
 * ports the asker listens on. The same answer gives the observed address
 * (translated or not) and a port the asker connects to from a fresh port of its
 * own, telling whether its NAT kept that port: the property hole punching
 * needs. A member-run check rather than libp2p's AutoNAT, which asks random
 * peers of a public network and needs several of them to agree; here every
 * peer is a member and one answer is trusted.
 */
export async function startReachability(options: ReachabilityOptions): Promise<Reachability> {
  const { libp2p, isMember } = options;
  const log = libp2p.logger.forComponent("coderclaw:reachability");
  let report: ReachabilityReport = { reachability: "unknown" };
  let checking: Promise<ReachabilityReport> | undefined;
  let echoBusy = false;

  await libp2p.handle(
    DIAL_BACK_PROTOCOL,
    async (stream: Stream, connection: Connection) => {
      const peer = connection.remotePeer.toString();
      const ip = directIp(connection);
      if (ip === undefined || echoBusy || !(await isMember(peer))) return stream.abort(new Error("no dial back here"));
      echoBusy = true;
      try {
        const channel = new FramedChannel({ stream, codec: dialBackCodec, peer });
        const request = await channel.receive({ timeoutMs: PROBE_MS });
        if (!("ports" in request)) throw new Error("a dial back request names ports");
        const reached = await Promise.all(request.ports.map((port) => canConnect(ip, port)));
        const echo = await echoOnce();
        await channel.send({ ip, reached, echoPort: echo.port });
        await echo.done;
        await stream.close().catch(() => undefined);
      } catch (err) {
        stream.abort(err as Error);
      } finally {
        echoBusy = false;
      }
    },
    { maxInboundStreams: 1, maxOutboundStreams: 1 },
  );

  const ask = async (connection: Connection): Promise<ReachabilityReport> => {
    const peer = connection.remotePeer.toString();
    const ports = listenPorts(libp2p);
    const stream = await connection.newStream(DIAL_BACK_PROTOCOL, { signal: AbortSignal.timeout(PROBE_MS) });
    try {
      const channel = new FramedChannel({ stream, codec: dialBackCodec, peer });
      await channel.send({ ports });
      const answer = await channel.receive({ timeoutMs: PROBE_MS * (ports.length + 2) });
      if (!("ip" in answer)) throw new Error(`${peer} answered a dial back request with a request`);
      const portPreserving = await sourcePortKept(directIp(connection)!, answer.echoPort).catch(() => undefined);
      return {
        reachability: answer.reached.some(Boolean) ? "public" : "private",
        observedIp: answer.ip,
        translated: !ownAddresses().has(answer.ip),
        ...(portPreserving !== undefined && { portPreserving }),
        by: peer,
        checkedAt: new Date().toISOString(),
      };
    } finally {
      await stream.close().catch(() => undefined);
    }
  };

  const check = (): Promise<ReachabilityReport> =>
    (checking ??= (async () => {
      let settled: ReachabilityReport | undefined;
      // A node on loopback only is for this machine: nobody elsewhere is meant to reach it, and there is nothing to ask.
      if (listenPorts(libp2p).length === 0) return report;
      const direct = libp2p.getConnections().filter((c) => c.status === "open" && directIp(c) !== undefined);
      const asked = new Set<string>();
      for (const connection of direct) {
        const peer = connection.remotePeer.toString();
        if (asked.size >= MEMBERS_ASKED || asked.has(peer) || !(await isMember(peer))) continue;
        asked.add(peer);
        try {
          const answer = await ask(connection);
          // A member that cannot tell the port (its echo is behind a NAT too) does not undo one that could.
          settled = answer.portPreserving === undefined && settled?.portPreserving !== undefined ? { ...answer, portPreserving: settled.portPreserving } : answer;
          if (answer.reachability === "public") break;
        } catch (err) {
          log("asking %s to dial back failed: %e", peer, err);
        }
      }
      if (settled !== undefined && (settled.reachability !== report.reachability || settled.portPreserving !== report.portPreserving || settled.observedIp !== report.observedIp)) {
        report = settled;
        log("reachability %s (observed %s, port kept %s)", report.reachability, report.observedIp, report.portPreserving);
        options.onChange?.(report);
      } else if (settled !== undefined) report = settled;
      return report;
    })().finally(() => (checking = undefined)));

  // Until some member has answered, and then now and then (a laptop may have changed networks).
  const look = setInterval(() => {
    const age = report.checkedAt === undefined ? Infinity : Date.now() - Date.parse(report.checkedAt);
    if (report.reachability !== "unknown" && age < RECHECK_MS) return;
    void check().catch((err: unknown) => log.error("reachability check failed: %e", err));
  }, LOOK_MS);
  look.unref();

  // Said from the listen addresses of now, not a member's answer: members on this machine reach a loopback node
  // directly, and "unknown" would read as a check still to come.
  const current = (): ReachabilityReport => (listenPorts(libp2p).length === 0 ? LOOPBACK : report);
  return { current, check, stop: () => clearInterval(look) };
}

/** The remote IPv4 address of a direct connection; undefined for a relayed one. */
function directIp(connection: Connection): string | undefined {
  const address = connection.remoteAddr.toString();
  return address.includes("/p2p-circuit") ? undefined : /^\/ip4\/([^/]+)\/tcp\//.exec(address)?.[1];
}

/** TCP ports this node listens on beyond loopback. */
function listenPorts(libp2p: Libp2p): number[] {
  const ports = libp2p
    .getMultiaddrs()
    .map((a) => a.toString())
    .filter((a) => !a.includes("/p2p-circuit") && !a.startsWith("/ip4/127.") && !a.startsWith("/ip6/::1/"))
    .map((a) => Number(/\/tcp\/(\d+)/.exec(a)?.[1]))
    .filter((p) => p > 0);
  return [...new Set(ports)].slice(0, 4);
}

function ownAddresses(): Set<string> {
  return new Set(Object.values(networkInterfaces()).flatMap((infos) => (infos ?? []).map((i) => i.address)));
}

function canConnect(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: ip, port, timeout: PROBE_MS });
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.once("connect", () => done(true));
    socket.once("timeout", () => done(false));
    socket.once("error", () => done(false));
  });
}

/** Accept one connection for a moment and write back the address and port it came from. */
function echoOnce(): Promise<{ port: number; done: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const server = createServer((socket: Socket) => {
      socket.end(`${socket.remoteAddress?.replace(/^::ffff:/, "")} ${socket.remotePort}\n`);
      server.close();
    });
    const done = new Promise<void>((closed) => server.once("close", () => closed()));
    setTimeout(() => server.close(), PROBE_MS).unref();
    server.once("error", reject);
    server.listen(0, "0.0.0.0", () => {
      const address = server.address();
      if (typeof address === "object" && address !== null) resolve({ port: address.port, done });
      else reject(new Error("the echo listener has no port"));
    });
  });
}

/** Connect to the member's echo and compare the port it saw with the one we sent from. */
function sourcePortKept(ip: string, echoPort: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: ip, port: echoPort, timeout: PROBE_MS });
    let text = "";
    let localPort: number | undefined;
    socket.once("connect", () => (localPort = socket.localPort));
    socket.setEncoding("utf8");
    socket.on("data", (chunk: string) => {
      text += chunk;
      if (text.length > 64) socket.destroy(new Error("echo answer too long"));
    });
    socket.once("timeout", () => socket.destroy(new Error(`no echo from ${ip}:${echoPort} in ${PROBE_MS} ms`)));
    socket.once("error", reject);
    socket.once("end", () => {
      const line = text.trim();
      if (!echoSchema.safeParse(line).success) return reject(new Error(`echo from ${ip}:${echoPort} is not "address port": ${line.slice(0, 40)}`));
      resolve(Number(line.split(" ")[1]) === localPort);
    });
  });
}
