import { expect, it } from "vitest";
import { ByteWindow } from "../../../protocols/blobs/index.js";

it("holds a sender while the bytes in flight would exceed the limit, and lets one oversize chunk through alone", async () => {
  const window = new ByteWindow(100);
  await window.take(60);
  let second = false;
  const waiting = window.take(60).then(() => (second = true));
  await new Promise((r) => setImmediate(r));
  expect(second).toBe(false);
  window.give(60);
  await waiting;
  expect(window.inFlight).toBe(60);
  window.give(60);
  await window.take(500);
  expect(window.inFlight).toBe(500);
});
