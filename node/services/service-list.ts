import type { MeshService, ServiceContext } from "./mesh-service.js";

/** A node's services, started together. */
export interface StartedServices {
  /** Tell every service that membership changed. */
  membersChanged(): void;
  /** Stop every service, the last started first. Idempotent. */
  stop(): Promise<void>;
}

/** Where a service's failure is reported: its protocol, and the peer when one is named. */
export type ServiceReport = (where: string, error: Error) => void;

/**
 * Start `services` in order, each with the node's context and its own
 * reporting (named by its protocol); if one fails to start, those already
 * started are stopped again before the error is rethrown, so a node that did
 * not start holds nothing.
 */
export async function startServices(services: readonly MeshService[], context: Omit<ServiceContext, "report">, report: ServiceReport): Promise<StartedServices> {
  const started: MeshService[] = [];
  const stopAll = async (): Promise<void> => {
    for (const service of started.splice(0).reverse()) await service.stop().catch((error: Error) => report(service.protocol, error));
  };
  try {
    for (const service of services) {
      await service.start({ ...context, report: (error, peer) => report(peer === undefined ? service.protocol : `${service.protocol} ${peer}`, error) });
      started.push(service);
    }
  } catch (error) {
    await stopAll();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    membersChanged() {
      for (const service of started) void Promise.resolve(service.membersChanged?.()).catch((error: Error) => report(service.protocol, error));
    },
    stop: () => (stopping ??= stopAll()),
  };
}
