-- The web sign-in's one-time codes go out through the outbox like every other
-- SMS (gateway, retries, delivery reports); they belong to no ledger operation.
ALTER TABLE outbox DROP CONSTRAINT outbox_event_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_event_check CHECK (event IN (
    'gift_received', 'gift_accepted', 'gift_declined', 'gift_cancelled',
    'gift_expired', 'gift_returned', 'reward_fulfilled', 'reward_failed', 'login_code'));
