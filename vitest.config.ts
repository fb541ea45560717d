import { defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";

/**
 * Vitest starts the files it has no timings for (every file of a fresh clone,
 * as in CI) largest first. The reach suites and the bench smokes are small
 * files that run for half a minute to a minute and a half each; started last,
 * the run ended with one of them alone on a worker. They start early, one
 * among every few of the rest: the reach suites mostly wait on their networks
 * (a reach suite uses a third to a half of a core), and started together they
 * left a core idle for the run's first minute.
 */
class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const isLong = (file: TestSpecification): boolean => /[/\\]test[/\\](reach|bench)[/\\]/.test(file.moduleId);
    const long = sorted.filter(isLong);
    const rest = sorted.filter((file) => !isLong(file));
    const order: TestSpecification[] = [];
    while (long.length > 0 || rest.length > 0) {
      if (long.length > 0) order.push(long.shift()!);
      order.push(...rest.splice(0, REST_PER_LONG_FILE));
    }
    return order;
  }
}

/** How many of the other files the sequencer starts between two long ones: about as long as one of those runs, on the two other workers. */
const REST_PER_LONG_FILE = 4;

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    setupFiles: ["./src/polyfills.ts"],
    pool: "forks",
    // Three on two cores: a file that waits (a 40 s network cut, a 30 s relayed task, a browser) leaves its
    // worker's core to the others. Measured on this two-core machine, the whole suite: 861 s with two workers,
    // 634 s with three (the cores 91% busy), 621 s with four (98% busy; a race in one test showed, since fixed).
    maxWorkers: 3,
    // A fresh module graph per file loaded libp2p, LevelDB, Automerge... again for each one: test/node, storage and
    // engine took 125 s of CPU that way and 69 s sharing the graph, the whole suite 1,047 s of wall time and 895 s.
    // Tests keep no state in modules or the environment; what one file leaves running shows up as an error of the run
    // (an unhandled rejection after a file ended was found this way).
    isolate: false,
    sequence: { sequencer: LongFilesFirst },
    testTimeout: 30_000,
    hookTimeout: 30_000,
  },
});
