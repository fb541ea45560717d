import type { Socket } from "node:net";
import { TypedEventEmitter } from "main-event";
import { transportSymbol, type AbortOptions, type ComponentLogger, type Connection, type CreateListenerOptions, type DialTransportOptions, type Listener, type Logger, type Transport, type Upgrader, type UpgraderOptions } from "@libp2p/interface";
import { AbstractMultiaddrConnection } from "@libp2p/utils";
import type { Multiaddr } from "@multiformats/multiaddr";

/**
 * Hands TCP sockets opened outside libp2p (by simultaneous open through two
 * NATs, see hole-punch.ts) to libp2p as connections, upgraded (Noise, yamux)
 * as if dialled. Both ends opened the socket, so each is told which of them
 * initiates the handshake. libp2p gives its upgrader to transports only, so
 * this is listed as one; it neither dials nor listens.
 */
export class SocketAdoption {
  #upgrader: Upgrader | undefined;
  #log: Logger | undefined;

  /** The transport through which this gets libp2p's upgrader; list it in `transports`. */
  transport(): (components: { logger: ComponentLogger; upgrader: Upgrader }) => Transport {
    return (components) => {
      this.#upgrader = components.upgrader;
      this.#log = components.logger.forComponent("coderclaw:punched-tcp");
      return new AdoptingTransport();
    };
  }

  /** Upgrade `socket`, connected to `remote` (with `/p2p/<peer>`), into a libp2p connection to that peer. */
  async adopt(socket: Socket, remote: Multiaddr, initiator: boolean, signal: AbortSignal): Promise<Connection> {
    if (this.#upgrader === undefined || this.#log === undefined) throw new Error("socket adoption is not part of a started libp2p node");
    // The muxer takes its role from the connection's direction: the responder must look inbound, or yamux finds two clients.
    const maConn = new SocketConnection(socket, remote, initiator ? "outbound" : "inbound", this.#log);
    try {
      return await this.#upgrader.upgradeOutbound(maConn, { initiator, signal } as UpgraderOptions);
    } catch (err) {
      maConn.abort(err as Error);
      throw err;
    }
  }
}

class AdoptingTransport implements Transport {
  readonly [Symbol.toStringTag] = "@coderclaw/punched-tcp";
  readonly [transportSymbol] = true as const;

  async dial(ma: Multiaddr, _options: DialTransportOptions): Promise<Connection> {
    throw new Error(`punched TCP connections are adopted, never dialled (${ma.toString()})`);
  }

  createListener(_options: CreateListenerOptions): Listener {
    return new NoListener();
  }

  listenFilter = (): Multiaddr[] => [];

  dialFilter = (): Multiaddr[] => [];
}

/** This transport never listens: its sockets come from hole punching. */
class NoListener extends TypedEventEmitter<Record<string, CustomEvent>> implements Listener {
  async listen(): Promise<void> {}
  getAddrs(): Multiaddr[] {
    return [];
  }
  updateAnnounceAddrs(): void {}
  async close(): Promise<void> {}
}

/** A connected socket as a libp2p MultiaddrConnection (as @libp2p/tcp makes one, which it does not export). */
class SocketConnection extends AbstractMultiaddrConnection {
  constructor(
    private readonly socket: Socket,
    remoteAddr: Multiaddr,
    direction: "inbound" | "outbound",
    log: Logger,
  ) {
    super({ remoteAddr, direction, log, inactivityTimeout: 2 * 60 * 1000 });
    socket.setNoDelay(true);
    socket.setKeepAlive(true);
    socket.on("data", (buf: Buffer) => this.onData(buf));
    socket.on("error", (err) => this.abort(err));
    socket.once("end", () => this.onTransportClosed());
    socket.once("close", (hadError) => (hadError ? this.abort(new Error("TCP transmission error")) : this.onTransportClosed()));
    socket.on("drain", () => this.safeDispatchEvent("drain"));
  }

  sendData(data: { byteLength: number; subarray(): Uint8Array }): { sentBytes: number; canSendMore: boolean } {
    const sentBytes = data.byteLength;
    return { sentBytes, canSendMore: sentBytes === 0 ? true : this.socket.write(data.subarray()) };
  }

  async sendClose(_options?: AbortOptions): Promise<void> {
    if (this.socket.destroyed) return;
    const closed = new Promise<void>((resolve) => this.socket.once("close", () => resolve()));
    this.socket.destroySoon();
    await closed;
  }

  sendReset(): void {
    if (this.socket.writableEnded) this.socket.destroy();
    else this.socket.resetAndDestroy();
  }

  sendPause(): void {
    this.socket.pause();
  }

  sendResume(): void {
    this.socket.resume();
  }
}
