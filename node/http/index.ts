/** The remote-enabled HTTP API of a node. */
export {
  createHttpServer,
  DEFAULT_BODY_LIMIT,
  type AccessDecision,
  type HttpAction,
  type HttpAuditQuery,
  type HttpRequestInfo,
  type HttpResource,
  type HttpServer,
  type HttpServerOptions,
  type HttpTlsOptions,
  type SessionPermissions,
} from "./server.js";
export { buildOpenApiDocument } from "./openapi.js";
export { securityHttpHooks, type SecurityHttpOptions } from "./security.js";
export { httpListenOptions } from "./config.js";
export type { HttpNodeAdmin } from "./admin-routes.js";
export { nodeCodeUploads, type HttpCodeUploads, type HttpServerUploads } from "./upload-routes.js";
