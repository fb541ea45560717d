import { createHash } from "node:crypto";

/**
 * The Automerge actor id of a device's documents: stable, derived from its
 * device id, so every process that writes for the device (the node, or the CLI
 * with no node running) writes as one actor.
 */
export function actorIdOf(peerId: string): string {
  return createHash("sha256").update(peerId).digest("hex").slice(0, 32);
}
