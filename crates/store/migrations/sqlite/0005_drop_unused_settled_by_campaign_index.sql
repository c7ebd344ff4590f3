-- No query reads `sends_settled_by_campaign`: a campaign's reports go
-- through `sends_by_campaign` (campaign, state), the recently-sent checks
-- through `sends_settled`, and the listing of sends filters on optional
-- parameters, which no index serves. Yet every send paid for it three
-- times: an entry at enqueue (campaign, NULL), then a delete and an insert
-- when it settled. Dropped; the store's tests check that every index left
-- on `sends` serves one of the store's queries.
DROP INDEX IF EXISTS sends_settled_by_campaign;
