-- The due-sends index, with the same rows, under a predicate SQLite checks
-- with plain comparisons.
--
-- SQLite evaluates a partial index's WHERE clause for every row written to
-- the table. `state IN ('pending', 'deferred', 'retrying')` (an IN list of
-- three or more constants) is checked by building a temporary b-tree of
-- the list, once per statement: every insert and every state change of a
-- send paid for one or two. Comparisons joined by OR build nothing. The
-- queries that pick due sends name the same expression, word for word, so
-- that the planner can prove they only want the indexed rows.
DROP INDEX sends_due;
CREATE INDEX sends_due ON sends(channel, due_ms)
    WHERE (state = 'pending' OR state = 'deferred' OR state = 'retrying');
