CREATE TABLE IF NOT EXISTS "comments" ("id" UUID NOT NULL PRIMARY KEY, "bug_id" BIGINT NOT NULL, "body" TEXT COLLATE "C" NOT NULL, "version" BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS "comments_bug_id_idx" ON "comments" ("bug_id", "id");
