-- No query reads `sends_settled_by_campaign`: a campaign's reports go
-- through `sends_by_campaign` (campaign, state), the recently-sent checks
-- through `sends_settled`. Every send paid for it at enqueue and again
-- when it settled. Dropped, as on SQLite (its migration 0005).
DROP INDEX IF EXISTS sends_settled_by_campaign;
