import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ENDED_REMEMBERED, LeaseBook } from "../../../protocols/task/lease.js";
import { newTaskId } from "../../../src/engine/task-id.js";
import type { TaskStatus } from "../../../src/contract/types.js";

const round = (tasks: { id: string; status: TaskStatus }[]) => ({ t: "lease" as const, round: 1, tasks });

describe("LeaseBook", () => {
  it("keeps no lease of a task whose end it saw, even when a round read before the end arrives after it", () => {
    const book = new LeaseBook();
    book.renew("t1", "running");
    expect(book.of("t1")?.status).toBe("running");
    book.renew("t1", "completed");
    book.renewAll(round([{ id: "t1", status: "running" }]), "executor");
    expect(book.of("t1")).toBeUndefined();
  });

  it("takes a task's renewals and its end only from the member that executes it", () => {
    const book = new LeaseBook();
    book.executes("t1", "executor");
    book.renew("t1", "running");
    const first = book.of("t1")!;
    book.renewAll(round([{ id: "t1", status: "completed" }, { id: "t2", status: "running" }]), "other");
    expect(book.of("t1")).toBe(first);
    expect(book.of("t2")).toBeUndefined();
    book.renewAll(round([{ id: "t1", status: "completed" }]), "executor");
    expect(book.of("t1")).toBeUndefined();
  });

  it("keeps a task with its executor when another member answers a submission with that task's id", () => {
    const [executor, other] = ["12D3KooWDLowZGTKvNesreXdpv7krsbJRDNtm7qF7yYEZAcZ8t1S", "12D3KooWJFVtvWAppAZicmUpWSiNiRwKHiCm1SwGEUahVUFLDRCJ"];
    const id = newTaskId(Date.now(), executor);
    for (const order of [[executor, other], [other, executor]]) {
      const book = new LeaseBook();
      for (const peer of order) book.executes(id, peer);
      book.renew(id, "running");
      book.renewAll(round([{ id, status: "completed" }]), other);
      expect(book.of(id)?.status).toBe("running");
      book.renewAll(round([{ id, status: "completed" }]), executor);
      expect(book.of(id)).toBeUndefined();
    }
  });

  it("holds a lease for every task it has not seen end, whatever the order of rounds and ends", () => {
    const statuses: TaskStatus[] = ["pending", "planning", "running", "waiting", "completed", "failed", "cancelled"];
    fc.assert(
      fc.property(fc.array(fc.record({ id: fc.constantFrom("a", "b", "c"), status: fc.constantFrom(...statuses) }), { maxLength: 40 }), (renewals) => {
        const book = new LeaseBook();
        const ended = new Set<string>();
        for (const r of renewals) {
          book.renew(r.id, r.status);
          if (["completed", "failed", "cancelled"].includes(r.status)) ended.add(r.id);
          for (const id of ["a", "b", "c"]) {
            const seen = renewals.slice(0, renewals.indexOf(r) + 1).some((x) => x.id === id);
            expect(book.of(id) !== undefined).toBe(seen && !ended.has(id));
          }
        }
      }),
    );
  });

  it("remembers a bounded number of ended tasks", () => {
    const book = new LeaseBook();
    for (let i = 0; i <= ENDED_REMEMBERED; i++) book.renew(`t${i}`, "completed");
    // The oldest end is forgotten: a late round may lease it again, which costs one lease until its timeout, not memory without bound.
    book.renew("t0", "running");
    expect(book.of("t0")?.status).toBe("running");
    book.renew(`t${ENDED_REMEMBERED}`, "running");
    expect(book.of(`t${ENDED_REMEMBERED}`)).toBeUndefined();
  });
});
