import { afterEach, describe, expect, it } from "vitest";
import { FramedChannel } from "../../protocols/framing/index.js";
import { createTaskCodec, MAX_SUBMITS_PER_MESSAGE, TASK_PROTOCOL, type TaskMessage } from "../../protocols/task/index.js";
import { formMesh, openRawStream, startNodes } from "../helpers/mesh.js";

let stop: (() => Promise<void>) | undefined;
afterEach(async () => {
  await stop?.();
  stop = undefined;
});

describe("a flooding member", () => {
  it("is cut off on its own channel while other members keep being served", async () => {
    const mesh = await startNodes(3);
    stop = mesh.stop;
    const [a, b, c] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);

    const stream = await openRawStream(b, a, TASK_PROTOCOL);
    const flood = new FramedChannel<TaskMessage>({ stream, codec: createTaskCodec(), peer: a.peerId });
    const closed = new Promise<void>((resolve) => stream.addEventListener("close", () => resolve()));
    // Far beyond the per-peer burst (10,000 frames), as fast as the stream takes them.
    const sends: Array<Promise<void>> = [];
    for (let rid = 1; rid <= 30_000; rid++) sends.push(flood.send({ t: "get", rid, taskId: "00000000-0000-4000-8000-000000000000" }).catch(() => undefined));
    await Promise.all(sends);
    await closed;
    expect(stream.status).not.toBe("open");

    const task = await c.adapter.submitTask({ description: "still served", input: "x", agentId: "echo" }, { route: a.peerId });
    for await (const u of c.adapter.streamTaskUpdates(task.id)) if (u.status === "completed") break;
    expect((await c.adapter.getTaskState(task.id))?.status).toBe("completed");
  }, 90_000);

  it("spends a frame of its allowance on each submission a message carries", async () => {
    const mesh = await startNodes(2);
    stop = mesh.stop;
    const [a, b] = mesh.nodes as [typeof mesh.nodes[0], typeof mesh.nodes[0]];
    await formMesh(mesh.nodes);

    const stream = await openRawStream(b, a, TASK_PROTOCOL);
    const flood = new FramedChannel<TaskMessage>({ stream, codec: createTaskCodec(), peer: a.peerId });
    const closed = new Promise<void>((resolve) => stream.addEventListener("close", () => resolve()));
    // 64 submissions per frame: 1,000 frames, far below the burst of 10,000, carry 64,000 submissions, far past it
    // and past what 5,000 a second refill while a busy machine works through them.
    const items = Array.from({ length: MAX_SUBMITS_PER_MESSAGE }, (_, i) => ({ rid: i + 1, envelope: new Uint8Array([i]) }));
    const sends: Array<Promise<void>> = [];
    for (let n = 0; n < 1_000; n++) sends.push(flood.send({ t: "submit", sig: new Uint8Array(64), items }).catch(() => undefined));
    await Promise.all(sends);
    await closed;
    expect(stream.status).not.toBe("open");
  }, 90_000);
});
