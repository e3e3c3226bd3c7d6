CREATE TABLE IF NOT EXISTS "comments" ("id" TEXT NOT NULL PRIMARY KEY, "bug_id" INTEGER NOT NULL, "body" TEXT NOT NULL, "version" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS "comments_bug_id_idx" ON "comments" ("bug_id", "id");
