CREATE TABLE IF NOT EXISTS `comments` (`id` CHAR(36) NOT NULL PRIMARY KEY, `bug_id` BIGINT NOT NULL, `body` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL, `version` BIGINT NOT NULL);
CREATE INDEX `comments_bug_id_idx` ON `comments` (`bug_id`, `id`);
