-- 002_retention.sql - storage settings for chimerad's deleting of old tasks.
--
-- chimera.task_events takes a few rows per task (claimed, each phase started
-- and finished, the outcome), and since retention (supervisor/retention.c)
-- loses them in batches of a few hundred tasks' worth, oldest first.  With
-- PostgreSQL's default autovacuum_vacuum_scale_factor of 0.2, a table kept
-- for a week would carry more than a day's worth of deleted events, and
-- their index entries, before autovacuum made the space reusable.  At 0.05
-- autovacuum comes once about 5 % of the rows are dead, so the table and
-- its two indexes carry about that much beyond their live rows, while the
-- full pass over both indexes that each vacuum makes still comes only once
-- a twentieth of the table has been deleted.  chimera.tasks has had 0.02
-- since 001: it is smaller, and each of its rows is updated several times.
-- Events are never updated, so their pages stay full (fillfactor 100).

ALTER TABLE chimera.task_events SET (autovacuum_vacuum_scale_factor = 0.05);

-- Both tables churn: every task updates its row twice and adds a few events,
-- and retention deletes them all again.  Autovacuum's default cost delay
-- (2 ms every 200 cost units) makes it sleep through most of a pass, so at a
-- few thousand tasks a second the dead rows it has not reached yet, not the
-- live ones, set the tables' size.  Unthrottled, a pass over these tables
-- (kept small by retention) takes a fraction of a second.
ALTER TABLE chimera.tasks SET (autovacuum_vacuum_cost_delay = 0);
ALTER TABLE chimera.task_events SET (autovacuum_vacuum_cost_delay = 0);
