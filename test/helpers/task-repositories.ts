import { afterEach } from "vitest";
import { LevelTaskRepository } from "../../src/engine/task-repository.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { LevelDocumentStore } from "../../src/storage/level-document-store.js";
import { tempDir } from "./temp-dir.js";

/** A task repository over a real LevelDB home, as a node opens it. */
export interface OpenedRepository {
  db: Database;
  store: LevelDocumentStore;
  repository: LevelTaskRepository;
}

/**
 * Task repositories in temporary homes for one test file: `home()` makes a
 * directory, `open(path)` opens (or reopens) the repository there; each test's
 * databases are closed and its directories removed after it.
 */
export function repositoryHomes(): { home: () => string; open: (path: string) => Promise<OpenedRepository> } {
  const dirs: Array<{ remove: () => void }> = [];
  const opened: Database[] = [];
  afterEach(async () => {
    for (const db of opened.splice(0)) if (db.status === "open") await db.close();
    for (const d of dirs.splice(0)) d.remove();
  });
  return {
    home: () => {
      const dir = tempDir();
      dirs.push(dir);
      return dir.path;
    },
    open: async (path) => {
      const db = await openDatabase(path);
      opened.push(db);
      const store = new LevelDocumentStore(db, { path });
      return { db, store, repository: await LevelTaskRepository.open(db, store) };
    },
  };
}
