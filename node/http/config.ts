import { readFileSync } from "node:fs";
import { CoderClawError } from "../../src/contract/errors.js";
import type { RuntimeConfig } from "../../src/config/runtime-config.js";
import type { HttpServerOptions } from "./server.js";

/**
 * The listener part of {@link HttpServerOptions} from runtime.yaml's `http`
 * section, with the TLS certificate and key read from their files. An unreadable
 * file is a CONFIG error naming its path, so start-up fails before binding.
 */
export function httpListenOptions(http: RuntimeConfig["http"]): Pick<HttpServerOptions<unknown>, "host" | "port" | "tls" | "bodyLimit" | "allowedHosts"> {
  const read = (path: string, what: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      throw new CoderClawError("CONFIG", `http.tls.${what}: cannot read ${path}: ${(err as Error).message}`, { field: `http.tls.${what}`, cause: err });
    }
  };
  return {
    host: http.host,
    port: http.port,
    ...(http.tls === undefined ? {} : { tls: { cert: read(http.tls.cert, "cert"), key: read(http.tls.key, "key") } }),
    ...(http.bodyLimit === undefined ? {} : { bodyLimit: http.bodyLimit }),
    ...(http.allowedHosts === undefined ? {} : { allowedHosts: http.allowedHosts }),
  };
}
