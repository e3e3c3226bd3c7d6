CREATE TABLE IF NOT EXISTS "bugs" ("id" INTEGER NOT NULL PRIMARY KEY, "title" TEXT NOT NULL, "status" TEXT NOT NULL, "assignee" TEXT, "version" INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS "bugs_status_idx" ON "bugs" ("status", "id");
