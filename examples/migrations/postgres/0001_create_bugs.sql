CREATE TABLE IF NOT EXISTS "bugs" ("id" BIGINT NOT NULL PRIMARY KEY, "title" TEXT COLLATE "C" NOT NULL, "status" TEXT COLLATE "C" NOT NULL, "assignee" TEXT COLLATE "C", "version" BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS "bugs_status_idx" ON "bugs" ("status", "id");
