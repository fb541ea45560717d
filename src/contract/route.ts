import { z } from "zod";
import { InvalidInputError } from "./errors.js";
import { parseInput } from "./parse-input.js";
import { MAX_ROUTE_LENGTH, ROUTE_AUTO, ROUTE_LOCAL, type SubmitOptions } from "./types.js";

/** A route on any wire (control socket, HTTP query): the one bound every entry point applies. */
export const RouteSchema = z.string().min(1, "must not be empty").max(MAX_ROUTE_LENGTH, `must be at most ${MAX_ROUTE_LENGTH} characters`);

/** `route` checked against {@link RouteSchema}, refused as INVALID_INPUT on field `route`. */
export function parseRoute(route: unknown): string {
  return parseInput(RouteSchema, route, "route");
}

/**
 * Refuse a route naming a peer, for a runtime that runs tasks only where it is:
 * it honours `auto` and `local` alike, and says so in the error otherwise.
 *
 * @param runtime - what the runtime is, for the message (`"LocalTransportAdapter"`).
 */
export function refusePeerRoute(options: SubmitOptions | undefined, runtime: string): void {
  if (options?.route === undefined) return;
  const route = parseRoute(options.route);
  if (route === ROUTE_AUTO || route === ROUTE_LOCAL) return;
  throw new InvalidInputError(
    `${runtime} runs tasks in this process and accepts the routes "${ROUTE_AUTO}" and "${ROUTE_LOCAL}", not ${JSON.stringify(route)}: a peer is reached through a mesh node (coderclaw start)`,
    "route",
  );
}
