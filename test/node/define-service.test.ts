import { describe, expect, it } from "vitest";
import { defineService, type ServiceContext } from "../../node/services/mesh-service.js";

const context = {} as ServiceContext;

describe("defineService", () => {
  it("a stop asked for while the service is still starting stops what started, once", async () => {
    let release!: () => void;
    const stops: string[] = [];
    const service = defineService("/test/slow/1.0.0", async () => {
      await new Promise<void>((resolve) => (release = resolve));
      return { stop: async () => void stops.push("stopped") };
    });
    const started = service.start(context);
    const stopped = service.stop();
    release();
    await started;
    await stopped;
    await service.stop();
    expect(stops).toEqual(["stopped"]);
  });

  it("refuses a second start, and says it has not started before it has", async () => {
    const service = defineService("/test/once/1.0.0", async () => ({ stop: async () => undefined }));
    expect(() => service.running).toThrow("/test/once/1.0.0 has not started");
    await service.start(context);
    await expect(service.start(context)).rejects.toThrow("has already started");
  });
});
