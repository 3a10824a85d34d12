-- Expiry reminders and earning rules.
--
-- A lot is reminded of once: ``reminded_at`` is set in the transaction that
-- queues its reminder SMS (claimed with FOR UPDATE SKIP LOCKED, so two
-- workers never take the same lot, and a lot once reminded is never again).
ALTER TABLE point_lots ADD COLUMN reminded_at timestamptz;
CREATE INDEX point_lots_unreminded ON point_lots (expires_at, id)
    WHERE remaining > 0 AND reminded_at IS NULL;

-- The reminder is an outbox notification like the others. The event list is
-- extended as it stands (other migrations extend it too), not rewritten.
DO $$
DECLARE
    events text[];
BEGIN
    SELECT array_agg(DISTINCT m[1]) INTO events
    FROM pg_constraint c,
         regexp_matches(pg_get_constraintdef(c.oid), '''([a-z_]+)''', 'g') AS m
    WHERE c.conrelid = 'outbox'::regclass AND c.conname = 'outbox_event_check';
    IF NOT 'points_expiring' = ANY (events) THEN
        events := array_append(events, 'points_expiring');
    END IF;
    ALTER TABLE outbox DROP CONSTRAINT outbox_event_check;
    EXECUTE format(
        'ALTER TABLE outbox ADD CONSTRAINT outbox_event_check CHECK (event IN (%s))',
        (SELECT string_agg(quote_literal(e), ', ' ORDER BY e) FROM unnest(events) AS e));
END $$;

-- What each event of POST /v1/events earned, rule by rule: one row per lot
-- credited. Monthly caps sum a rule's rows of the event's calendar month; a
-- joining bonus is granted once per member (the partial unique index says so
-- even if the code did not).
CREATE TABLE earnings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id  bigint NOT NULL REFERENCES operations (id),
    subscriber_id bigint NOT NULL REFERENCES subscribers (id),
    lot_id        bigint NOT NULL UNIQUE REFERENCES point_lots (id),
    kind          text NOT NULL CHECK (kind IN ('topup', 'tenure', 'joined')),
    rule          text NOT NULL CHECK (rule ~ '^[a-z][a-z0-9_]{0,63}$'),
    points        bigint NOT NULL CHECK (points > 0),
    occurred_at   timestamptz NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX earnings_rule_month ON earnings (subscriber_id, rule, occurred_at);
CREATE UNIQUE INDEX earnings_joined_once ON earnings (subscriber_id) WHERE kind = 'joined';
CREATE TRIGGER earnings_append_only BEFORE UPDATE OR DELETE ON earnings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
