import { z } from "zod";
import { RouteSchema } from "../../src/contract/route.js";

/** Longest line either side accepts: a 1 MiB input can double in size when JSON-escaped. */
export const MAX_CONTROL_LINE_BYTES = 4 * 1024 * 1024;

/** Methods the control socket serves, each one call of the runtime contract. */
export const CONTROL_METHODS = [
  "submitTask",
  "getTaskState",
  "getTaskEvents",
  "cancelTask",
  "listTasks",
  "listAgents",
  "listSkills",
  "getStatus",
  "streamTaskUpdates",
  "closeStream",
  "retryTask",
  "admin",
] as const;

/** The first line of every connection: proof that the client can read the data directory. */
export const HelloSchema = z.strictObject({ type: z.literal("hello"), token: z.string().min(1).max(256) });

/** A request line. */
export const RequestSchema = z.strictObject({
  id: z.number().int().min(0),
  method: z.enum(CONTROL_METHODS),
  params: z.unknown().optional(),
});

/** Parameters of `admin`: one administrative call of a mesh node (see node/node-admin.ts). */
export const AdminParamsSchema = z.strictObject({ method: z.string().min(1).max(64), params: z.unknown().optional() });

/**
 * Parameters of `submitTask`: the request, where to run it (`SubmitOptions.route`)
 * and the other submit options (priority, requires, deadline as epoch ms,
 * waitForPeer), which the node's runtime checks as every edge does.
 */
export const SubmitParamsSchema = z.strictObject({ request: z.unknown(), route: RouteSchema.optional(), options: z.record(z.string(), z.unknown()).optional() });

/** Parameters that name one task. */
export const TaskParamsSchema = z.strictObject({ taskId: z.string().max(128) });

/** Parameters of `streamTaskUpdates`. */
export const StreamParamsSchema = z.strictObject({ taskId: z.string().max(128), afterSeq: z.number().int().min(0).optional() });

/** Parameters of `closeStream`: the request id of the stream to stop. */
export const CloseStreamParamsSchema = z.strictObject({ streamId: z.number().int().min(0) });

/** A response line: a result, one streamed event, the end of a stream, or an error. */
export type ResponseLine =
  | { id: number; result: unknown }
  | { id: number; event: unknown }
  | { id: number; end: true }
  | { id: number; error: { code: string; message: string; field?: string } };
