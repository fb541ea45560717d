import type { MeshService, ServiceContext } from "./mesh-service.js";

/** Where a service's failure is reported: its protocol, and the peer when one is named. */
export type ServiceReport = (where: string, error: Error) => void;

/** A node's services, started together. */
export interface ServiceList {
  /**
   * Start the services in order, each with the node's context and its own
   * reporting (named by its protocol); if one fails to start, those already
   * started are stopped again before the error is rethrown, so a node that did
   * not start holds nothing.
   */
  start(context: Omit<ServiceContext, "report">, report: ServiceReport): Promise<void>;
  /** Tell every service started so far that membership changed (a service may ask for it while later ones still start). */
  membersChanged(): void;
  /** Stop every service started, the last started first. Idempotent. */
  stop(): Promise<void>;
}

/** The services `services`, not started yet. */
export function serviceList(services: readonly MeshService[]): ServiceList {
  const started: MeshService[] = [];
  let report: ServiceReport = () => undefined;
  let stopping: Promise<void> | undefined;
  const stopAll = async (): Promise<void> => {
    for (const service of started.splice(0).reverse()) await service.stop().catch((error: Error) => report(service.protocol, error));
  };
  return {
    async start(context, reportTo) {
      report = reportTo;
      try {
        for (const service of services) {
          await service.start({ ...context, report: (error, peer) => report(peer === undefined ? service.protocol : `${service.protocol} ${peer}`, error) });
          started.push(service);
        }
      } catch (error) {
        await stopAll();
        throw error;
      }
    },
    membersChanged() {
      for (const service of started) void Promise.resolve(service.membersChanged?.()).catch((error: Error) => report(service.protocol, error));
    },
    stop: () => (stopping ??= stopAll()),
  };
}
