/**
 * Group commit: writes of one event-loop turn share a transaction, settle only once it is committed,
 * and a failing write (whole, with all its statements) is the only one undone.
 * @module
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import Database from "better-sqlite3";
import { GroupCommit } from "../../src/store/sqlite/group-commit.js";

const dir = mkdtempSync(path.join(tmpdir(), "darkroom-group-commit-"));
after(() => rmSync(dir, { recursive: true, force: true }));

let seq = 0;
function openPair(): { db: Database.Database; reader: Database.Database; writes: GroupCommit } {
  const file = path.join(dir, `db-${++seq}.sqlite`);
  const db = new Database(file);
  db.pragma("journal_mode = WAL");
  db.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL UNIQUE); CREATE TABLE log (v TEXT NOT NULL)");
  // A second connection sees only what is committed.
  return { db, reader: new Database(file, { readonly: true }), writes: new GroupCommit(db) };
}

describe("group commit", () => {
  it("commits the writes of one turn together and resolves only after the commit", async () => {
    const { db, reader, writes } = openPair();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const visible = reader.prepare("SELECT COUNT(*) AS n FROM t");
    const seen = await Promise.all(
      ["a", "b", "c"].map((v) =>
        writes.run(() => {
          insert.run(v);
          // Had an earlier write of the batch committed on its own, the other connection would see it.
          return (visible.get() as { n: number }).n;
        }),
      ),
    );
    assert.deepEqual(seen, [0, 0, 0], "no write of the batch is visible before the batch commits");
    assert.equal((visible.get() as { n: number }).n, 3, "all three are visible once resolved");
    db.close();
    reader.close();
  });

  it("undoes a failing write alone, with all of its statements, and keeps the others", async () => {
    const { db, reader, writes } = openPair();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    const log = db.prepare("INSERT INTO log (v) VALUES (?)");
    const outcomes = await Promise.allSettled([
      writes.run(() => insert.run("first").changes),
      writes.run(() => {
        // Two statements: the first succeeds, the second breaks the UNIQUE constraint.
        log.run("half-done");
        return insert.run("first").changes;
      }),
      writes.run(() => insert.run("third").changes),
    ]);
    assert.equal(outcomes[0]?.status, "fulfilled");
    assert.equal(outcomes[1]?.status, "rejected");
    assert.match(String(outcomes[1].reason), /UNIQUE/);
    assert.equal(outcomes[2]?.status, "fulfilled");
    const rows = reader.prepare("SELECT v FROM t ORDER BY id").all() as { v: string }[];
    assert.deepEqual(rows.map((r) => r.v), ["first", "third"]);
    assert.equal((reader.prepare("SELECT COUNT(*) AS n FROM log").get() as { n: number }).n, 0, "the failed write left nothing behind");
    db.close();
    reader.close();
  });

  it("runs writes of the next turn in a new transaction after a failure", async () => {
    const { db, reader, writes } = openPair();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    await assert.rejects(Promise.all([writes.run(() => insert.run("x")), writes.run(() => insert.run("x"))]));
    await writes.run(() => insert.run("y"));
    const rows = reader.prepare("SELECT v FROM t ORDER BY id").all() as { v: string }[];
    assert.deepEqual(rows.map((r) => r.v), ["x", "y"]);
    db.close();
    reader.close();
  });
  it("undoes the in-memory effects of exactly the writes the database rolled back", async () => {
    const { db, reader, writes } = openPair();
    const insert = db.prepare("INSERT INTO t (v) VALUES (?)");
    // Beside the table, a count in memory that each write moves and registers how to move back.
    let count = 0;
    const counted = (v: string) => () => {
      count += 1;
      writes.onRollback(() => (count -= 1));
      return insert.run(v).changes;
    };
    const outcomes = await Promise.allSettled([writes.run(counted("a")), writes.run(counted("a")), writes.run(counted("b"))]);
    assert.deepEqual(outcomes.map((o) => o.status), ["fulfilled", "rejected", "fulfilled"]);
    assert.equal((reader.prepare("SELECT COUNT(*) AS n FROM t").get() as { n: number }).n, 2);
    assert.equal(count, 2, "the first pass's effects were undone, the retry's failing write too, and the two committed ones stay");
    writes.onRollback(() => (count = -1)); // outside a write: nothing to roll back, never called
    await writes.run(counted("c"));
    assert.equal(count, 3);
    db.close();
    reader.close();
  });
});
