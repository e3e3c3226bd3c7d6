CREATE TABLE IF NOT EXISTS `bugs` (`id` BIGINT NOT NULL PRIMARY KEY, `title` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL, `status` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin NOT NULL, `assignee` LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin, `version` BIGINT NOT NULL);
CREATE INDEX `bugs_status_idx` ON `bugs` (`status`(255), `id`);
