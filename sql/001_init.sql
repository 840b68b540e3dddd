-- 001_init.sql - chimera's queue: tasks, their timeline, supervisors, queues.
--
-- Applied by `chimerad --migrate` inside one transaction that holds an
-- advisory lock, after `CREATE SCHEMA chimera` and `chimera.schema_version`
-- exist; so this file needs no IF NOT EXISTS and never runs twice.

CREATE TABLE chimera.tasks (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    queue            text        NOT NULL DEFAULT 'default',
    workflow         text        NOT NULL,
    payload          jsonb       NOT NULL DEFAULT '{}',
    priority         smallint    NOT NULL DEFAULT 3,
    status           text        NOT NULL DEFAULT 'queued',
    run_at           timestamptz NOT NULL DEFAULT now(),
    attempts         integer     NOT NULL DEFAULT 0,
    max_attempts     integer     NOT NULL DEFAULT 3,
    lease_owner      uuid,
    lease_expires_at timestamptz,
    state            jsonb,
    result           jsonb,
    last_error       text,
    trace_id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    -- Constraint names are what a user sees when an INSERT is refused, so
    -- they are written as the rule being broken.
    CONSTRAINT "payload must be a JSON object" CHECK (jsonb_typeof(payload) = 'object'),
    CONSTRAINT "priority must be between 1 and 5" CHECK (priority BETWEEN 1 AND 5),
    CONSTRAINT "status must be queued, running, succeeded, failed, dead or cancelled"
        CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead', 'cancelled')),
    CONSTRAINT "max_attempts must be at least 1" CHECK (max_attempts >= 1),
    CONSTRAINT "attempts must not be negative" CHECK (attempts >= 0),
    CONSTRAINT "workflow must not be empty" CHECK (workflow <> ''),
    CONSTRAINT "queue must not be empty" CHECK (queue <> '')
) WITH (fillfactor = 80,
        autovacuum_vacuum_scale_factor = 0.02,
        autovacuum_analyze_scale_factor = 0.02);

COMMENT ON TABLE chimera.tasks IS
    'chimera work queue: INSERT (workflow, payload) to submit a task';

-- The claim query's index: only queued rows, in claim order, so it stays
-- small however many finished rows the table keeps.
CREATE INDEX tasks_claim_idx ON chimera.tasks (queue, priority DESC, run_at, id)
    WHERE status = 'queued';

-- The reaper's index: running rows by lease expiry.
CREATE INDEX tasks_lease_idx ON chimera.tasks (lease_expires_at)
    WHERE status = 'running';

-- Retention deletes finished rows oldest first.
CREATE INDEX tasks_finished_idx ON chimera.tasks (finished_at)
    WHERE finished_at IS NOT NULL;

-- Append-only timeline.  No foreign key to tasks: retention deletes a task's
-- events with it, and a key check on every event insert would cost the hot
-- path for nothing.
CREATE TABLE chimera.task_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_id  bigint      NOT NULL,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    attempt  integer     NOT NULL,
    kind     text        NOT NULL,
    phase    text,
    detail   jsonb,
    CONSTRAINT "event kind must be known" CHECK (kind IN
        ('claimed', 'phase_started', 'phase_finished', 'retried', 'succeeded',
         'failed', 'dead', 'cancelled'))
);

CREATE INDEX task_events_task_idx ON chimera.task_events (task_id, id);

CREATE TABLE chimera.supervisors (
    id           uuid        PRIMARY KEY,
    host         text        NOT NULL,
    pid          integer     NOT NULL,
    pool_size    integer     NOT NULL,
    version      text        NOT NULL,
    queues       text[]      NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE chimera.queues (
    name      text        PRIMARY KEY,
    paused    boolean     NOT NULL DEFAULT false,
    paused_at timestamptz
);

-- An idle supervisor LISTENs on chimera_tasks and claims at once.  One
-- notification per INSERT statement and queue, not per row: a bulk insert
-- of 10,000 rows wakes supervisors once.
CREATE FUNCTION chimera.notify_tasks_inserted() RETURNS trigger
    LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('chimera_tasks', q.queue)
       FROM (SELECT DISTINCT queue FROM new_rows) AS q;
    RETURN NULL;
END;
$$;

CREATE TRIGGER tasks_notify_insert
    AFTER INSERT ON chimera.tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION chimera.notify_tasks_inserted();
