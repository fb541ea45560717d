import { describe, expect, it } from "vitest";
import { MAX_WIRE_OUTPUT_BYTES } from "../../../protocols/task/messages.js";
import { StreamedOutput } from "../../../protocols/task/streamed-output.js";

const output = (seq: number, message: string) => ({ seq, type: "output_added" as const, ts: 0, status: "running" as const, message });
const progress = (seq: number) => ({ seq, type: "progress_updated" as const, ts: 0, status: "running" as const, message: "step", progress: 5 });

describe("the output a followed task's events carried", () => {
  it("is the text of its output events in order, nothing else", () => {
    const s = new StreamedOutput();
    expect(s.text()).toBe("");
    s.add([output(1, "a\n"), progress(2)]);
    s.add([output(3, "b\n")]);
    expect(s.text()).toBe("a\nb\n");
    s.add([output(4, "c")]);
    expect(s.text()).toBe("a\nb\nc");
  });

  it("is given up past the largest output a state may carry, whatever comes after: an executor cannot grow it without bound", () => {
    const s = new StreamedOutput();
    const chunk = "x".repeat(128 * 1024);
    for (let i = 0; i * chunk.length <= MAX_WIRE_OUTPUT_BYTES; i++) s.add([output(i + 1, chunk)]);
    expect(s.text()).toBeUndefined();
    s.add([output(1_000, "more")]);
    expect(s.text()).toBeUndefined();
  });
});
