import { describe, expect, it } from "vitest";
import { readSse, type SseMessage } from "../../src/util/sse-reader.js";

const bodyOf = (chunks: string[]): ReadableStream<Uint8Array> =>
  new ReadableStream<Uint8Array>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(new TextEncoder().encode(chunk));
      controller.close();
    },
  });
const read = async (chunks: string[], options: Partial<Parameters<typeof readSse>[1]> = {}): Promise<SseMessage[]> => {
  const out: SseMessage[] = [];
  for await (const m of readSse(bodyOf(chunks), { maxEventChars: 1000, error: (message) => new Error(message), ...options })) out.push(m);
  return out;
};

describe("readSse", () => {
  it("refuses an event that grows past its bound, even one endless line, however it is split", async () => {
    await expect(read(Array.from({ length: 20 }, () => "x".repeat(100)))).rejects.toThrow("an event is over 1000 characters");
    await expect(read(["data: ", "y".repeat(600), "\ndata: ", "y".repeat(600), "\n\n"])).rejects.toThrow("over 1000");
    expect(await read(["data: ", "y".repeat(600), "\n\n", "data: ", "y".repeat(600), "\n\n"])).toHaveLength(2);
  });

  it("drops an event the stream ends without its blank line, unless told it counts", async () => {
    expect(await read(["data: a\n\ndata: cut"])).toEqual([{ event: "message", data: "a" }]);
    expect(await read(["data: a\n\ndata: cut"], { endCompletesEvent: true })).toEqual([
      { event: "message", data: "a" },
      { event: "message", data: "cut" },
    ]);
  });

  it("hands fields SSE does not define to the caller, which may refuse the stream", async () => {
    const seen: string[] = [];
    expect(await read(["bogus: 1\ndata: a\n\n"], { onUnknownField: (line) => void seen.push(line) })).toEqual([{ event: "message", data: "a" }]);
    expect(seen).toEqual(["bogus: 1"]);
    await expect(read(["<html>\n\n"], { onUnknownField: (line) => { throw new Error(`unexpected line: ${line}`); } })).rejects.toThrow("unexpected line: <html>");
  });
});
