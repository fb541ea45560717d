import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { z } from "zod";
import { CoderClawError } from "../../src/contract/errors.js";
import { parseInput } from "../../src/contract/parse-input.js";
import { decodeBlobFrames, MAX_BLOB_FRAMES_BYTES, MAX_MISSING_QUERY } from "../../src/workspace/blob-frames.js";
import { DIGEST_PATTERN } from "../../src/workspace/manifest.js";
import { createSlots } from "../../src/util/slots.js";
import type { ClusterTransportAdapter } from "../cluster-adapter.js";
import type { CodeUploads, UploadedTree } from "../workspaces/code-uploads.js";
import type { HttpServerOptions } from "./server.js";

/** What the HTTP API needs of a node to take code with a task (node/workspaces/code-uploads.ts). */
export interface HttpCodeUploads {
  /** The digests of `digests` that `caller` has not sent. */
  missing(caller: string, digests: readonly string[]): Promise<string[]>;
  /** Store blobs `caller` sent, each checked against its digest. */
  put(caller: string, blobs: ReadonlyArray<readonly [digest: string, bytes: Uint8Array]>): Promise<void>;
  /** Take the index of tree `tree`, every blob of which `caller` sent. */
  putTree(caller: string, tree: string, index: Uint8Array): Promise<UploadedTree>;
}

/** What `createHttpServer`'s `uploads` takes: the routes' needs, and a submission naming an uploaded tree. */
export type HttpServerUploads = NonNullable<HttpServerOptions<unknown>["uploads"]>;

/** A node's uploads and adapter as `createHttpServer` takes them (its `uploads` option). */
export function nodeCodeUploads(node: { uploads: CodeUploads; adapter: Pick<ClusterTransportAdapter, "submitUploaded"> }): HttpServerUploads {
  const { uploads, adapter } = node;
  return {
    missing: (caller, digests) => uploads.missing(caller, digests),
    put: (caller, blobs) => uploads.put(caller, blobs),
    putTree: (caller, tree, index) => uploads.putTree(caller, tree, index),
    submit: (caller, request, options, code) => adapter.submitUploaded(request, options, { ...(code.commits === true && { commits: true }), adopt: () => uploads.submit(caller, code.tree, code.artifacts) }),
  };
}

/** What the routes need of the server they are added to. */
export interface UploadRouteDeps {
  uploads: HttpCodeUploads;
  /** Refuses (throws) a caller that may not submit tasks: sending code is the first step of submitting one. */
  check: (request: FastifyRequest) => Promise<void>;
  /** Whose uploads a request's are: its session (or subject). */
  callerOf: (request: FastifyRequest) => string;
}

/**
 * Requests of these routes being received and answered at once, node-wide: each holds its body in memory whole
 * (up to 8 MiB of blobs, 7 MiB of digests, 4 MiB of index), a tree's pieces besides.
 */
const MAX_UPLOADS_IN_FLIGHT = 8;
/** Of those, one session's: a client sends one after another, and one stalling eight would keep every other session out. */
const MAX_UPLOADS_IN_FLIGHT_PER_CALLER = 2;
/** Largest tree index taken: 100,000 pieces of 32 bytes, and their encoding. */
const MAX_INDEX_BYTES = 4 * 1024 * 1024;

const Digest = z.string().regex(DIGEST_PATTERN, "must be a SHA-256 digest in lowercase hex");
const MissingSchema = z.strictObject({ digests: z.array(Digest).max(MAX_MISSING_QUERY, `at most ${MAX_MISSING_QUERY} digests at once`) });

/**
 * `/blobs` and `/trees` routes: a caller sends the code of a task it is about
 * to submit (`POST /v1/tasks?tree=`). `POST /blobs/missing` answers which of
 * a tree's blobs the caller has not sent yet (what it sent for an earlier
 * submission counts; what others sent does not), `POST /blobs` takes a body of
 * blobs (blob-frames.ts), `PUT /trees/:id` the tree's index once every blob
 * of it was sent.
 */
export function registerUploadRoutes(api: FastifyInstance, deps: UploadRouteDeps): void {
  const inFlight = createSlots(MAX_UPLOADS_IN_FLIGHT, MAX_UPLOADS_IN_FLIGHT_PER_CALLER);
  // Counted before the body is read, so that a request beyond is refused without its body taking memory.
  const admit = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const slot = inFlight.take(deps.callerOf(request));
    if ("refused" in slot) {
      throw new CoderClawError("UNAVAILABLE", slot.refused === "key" ? `this session is sending ${slot.held} uploads already; send one after another` : `this node is receiving ${MAX_UPLOADS_IN_FLIGHT} uploads already; try again shortly`);
    }
    reply.raw.once("close", slot.release);
    await deps.check(request);
  };
  void api.register(async (scope) => {
    scope.addContentTypeParser("application/octet-stream", { parseAs: "buffer", bodyLimit: MAX_BLOB_FRAMES_BYTES }, (_request, body, done) => done(null, body));

    scope.post("/blobs/missing", { bodyLimit: 72 * MAX_MISSING_QUERY, onRequest: admit }, async (request) => {
      const { digests } = parseInput(MissingSchema, request.body);
      return { missing: await deps.uploads.missing(deps.callerOf(request), digests) };
    });

    scope.post("/blobs", { bodyLimit: MAX_BLOB_FRAMES_BYTES, onRequest: admit }, async (request) => {
      const blobs = decodeBlobFrames(bodyBytes(request.body));
      await deps.uploads.put(deps.callerOf(request), blobs);
      return { stored: blobs.length };
    });

    scope.put<{ Params: { id: string } }>("/trees/:id", { bodyLimit: MAX_INDEX_BYTES, onRequest: admit }, async (request) => {
      const tree = parseInput(Digest, request.params.id, "id");
      return deps.uploads.putTree(deps.callerOf(request), tree, bodyBytes(request.body));
    });
  });
}

function bodyBytes(body: unknown): Uint8Array {
  if (!(body instanceof Uint8Array)) throw new CoderClawError("INVALID_INPUT", "the body must be application/octet-stream", { field: "body" });
  return body;
}
