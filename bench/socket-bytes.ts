import { Socket } from "node:net";

let written = 0;
const write = Socket.prototype.write;
Socket.prototype.write = function (this: Socket, chunk: unknown, ...rest: unknown[]): boolean {
  if (chunk instanceof Uint8Array) written += chunk.byteLength;
  else if (typeof chunk === "string") written += Buffer.byteLength(chunk);
  return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
};

/** Bytes handed to every TCP socket of this process since this module loaded. */
export function socketBytes(): number {
  return written;
}
