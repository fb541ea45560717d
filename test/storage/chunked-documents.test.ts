import { afterEach } from "vitest";
import { levelKeyValues, memoryKeyValues } from "../../src/storage/key-value.js";
import { openDatabase, type Database } from "../../src/storage/level-database.js";
import { chunkedDocumentsSuite } from "../compliance/chunked-documents.js";
import { tempDir } from "../helpers/temp-dir.js";

const dirs: Array<{ remove: () => void }> = [];
afterEach(() => {
  for (const d of dirs.splice(0)) d.remove();
});

chunkedDocumentsSuite("LevelDB", async () => {
  const dir = tempDir();
  dirs.push(dir);
  let db: Database = await openDatabase(dir.path);
  return {
    kv: levelKeyValues(db),
    async reopen() {
      await db.close();
      db = await openDatabase(dir.path);
      return levelKeyValues(db);
    },
    teardown: () => db.close(),
  };
});

chunkedDocumentsSuite("in memory", async () => {
  const kv = memoryKeyValues();
  return { kv, reopen: async () => kv, teardown: async () => undefined };
});
