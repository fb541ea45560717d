import { configDefaults, defineConfig } from "vitest/config";
import { BaseSequencer, type TestSpecification } from "vitest/node";
import { REACH_SUITES } from "./test/slow-suites.js";

/**
 * Vitest starts the files it has no timings for (every file of a fresh clone,
 * as in CI) largest first. The reach suites and the bench smokes are small
 * files that run for half a minute to a minute and a half each; started last,
 * the run ended with one of them alone on a worker. They go first. (Started
 * one among every four of the others instead, the run took 648 s against 600 s
 * and 11% more CPU: measured once each, fresh clones, this machine.)
 */
class LongFilesFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const sorted = await super.sort(files);
    const long = (file: TestSpecification): boolean => /[/\\]test[/\\](reach|bench)[/\\]/.test(file.moduleId);
    return [...sorted.filter(long), ...sorted.filter((file) => !long(file))];
  }
}

/** `npm test`, and with `CODERCLAW_TEST_SUITES=reach` the suites it leaves to `npm run test:reach` (test/slow-suites.ts) alone. */
const reach = process.env.CODERCLAW_TEST_SUITES === "reach";

export default defineConfig({
  test: {
    include: reach ? [...REACH_SUITES] : ["test/**/*.test.ts"],
    exclude: reach ? configDefaults.exclude : [...configDefaults.exclude, ...REACH_SUITES],
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
