-- The points ledger: subscribers, accounts, operations (idempotency), postings
-- (append-only, balanced per operation), point lots, gifts, rewards,
-- redemptions and the notification outbox.
--
-- Sign convention: a posting's amount is added to its account. Subscriber
-- accounts hold non-negative balances; issuance goes negative as points are
-- created, so the sum over all accounts is always zero.
--
-- Only subscriber accounts keep a stored balance (updated under a row lock).
-- System account balances are derived from their postings, so no operation
-- ever locks or updates a shared system account row.

CREATE TABLE subscribers (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    msisdn      text NOT NULL UNIQUE CONSTRAINT msisdn_is_e164 CHECK (msisdn ~ '^\+[1-9][0-9]{6,14}$'),
    status      text NOT NULL DEFAULT 'not_enrolled'
                CHECK (status IN ('not_enrolled', 'active', 'blocked')),
    language    text NOT NULL CHECK (language ~ '^[a-z]{2,3}$'),
    enrolled_at timestamptz,
    created_at  timestamptz NOT NULL,
    CONSTRAINT active_means_enrolled CHECK (status <> 'active' OR enrolled_at IS NOT NULL)
);

CREATE TABLE accounts (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind          text NOT NULL
                  CHECK (kind IN ('subscriber', 'issuance', 'escrow', 'redemption', 'expired')),
    subscriber_id bigint UNIQUE REFERENCES subscribers (id),
    balance       bigint,
    CONSTRAINT subscriber_accounts_have_owner CHECK ((kind = 'subscriber') = (subscriber_id IS NOT NULL)),
    CONSTRAINT only_subscriber_balances_stored CHECK ((kind = 'subscriber') = (balance IS NOT NULL)),
    CONSTRAINT subscriber_balance_not_negative CHECK (balance >= 0)
);
CREATE UNIQUE INDEX accounts_one_per_system_kind ON accounts (kind) WHERE kind <> 'subscriber';
INSERT INTO accounts (kind) VALUES ('issuance'), ('escrow'), ('redemption'), ('expired');

-- One row per mutating request. Inserted first in the request's transaction
-- (a concurrent request with the same op_id waits on the unique index), and
-- completed with its status and result before commit; never changed after.
CREATE TABLE operations (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    op_id         text NOT NULL UNIQUE CHECK (length(op_id) BETWEEN 1 AND 200),
    kind          text NOT NULL,
    request_hash  text NOT NULL,
    subscriber_id bigint REFERENCES subscribers (id),
    status        text CHECK (status IN ('succeeded', 'rejected')),
    code          text,
    result        jsonb,
    created_at    timestamptz NOT NULL,
    CONSTRAINT completed_together CHECK ((status IS NULL) = (result IS NULL) AND (status IS NULL) = (code IS NULL)),
    CONSTRAINT status_matches_code CHECK ((status = 'succeeded') = (code = 'ok'))
);
CREATE INDEX operations_subscriber ON operations (subscriber_id, id);

CREATE TABLE postings (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id  bigint NOT NULL REFERENCES operations (id),
    account_id    bigint NOT NULL REFERENCES accounts (id),
    amount        bigint NOT NULL CHECK (amount <> 0),
    -- The subscriber account's balance after this entry; NULL on system accounts.
    balance_after bigint CHECK (balance_after >= 0),
    created_at    timestamptz NOT NULL
);
CREATE INDEX postings_account ON postings (account_id, id);
CREATE INDEX postings_operation ON postings (operation_id);

-- Every accrual creates a lot; spending consumes lots soonest-expiring first
-- and records each consumption as a negative lot move; returns add positive
-- moves to the same lots. remaining = amount + sum(moves).
CREATE TABLE point_lots (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts (id),
    operation_id  bigint NOT NULL REFERENCES operations (id),
    -- For lots received as a gift: the sender's lot the points came from.
    source_lot_id bigint REFERENCES point_lots (id),
    amount        bigint NOT NULL CHECK (amount > 0),
    remaining     bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    expires_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL
);
CREATE INDEX point_lots_live ON point_lots (account_id, expires_at, id) WHERE remaining > 0;
CREATE INDEX point_lots_due ON point_lots (expires_at) WHERE remaining > 0;

CREATE TABLE lot_moves (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id bigint NOT NULL REFERENCES operations (id),
    lot_id       bigint NOT NULL REFERENCES point_lots (id),
    amount       bigint NOT NULL CHECK (amount <> 0),
    created_at   timestamptz NOT NULL
);
CREATE INDEX lot_moves_operation ON lot_moves (operation_id);
CREATE INDEX lot_moves_lot ON lot_moves (lot_id);

CREATE TABLE gifts (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sender_id            bigint NOT NULL REFERENCES subscribers (id),
    recipient_id         bigint NOT NULL REFERENCES subscribers (id),
    points               bigint NOT NULL CHECK (points > 0),
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'accepted', 'declined', 'expired', 'cancelled')),
    created_at           timestamptz NOT NULL,
    expires_at           timestamptz NOT NULL,
    resolved_at          timestamptz,
    operation_id         bigint NOT NULL REFERENCES operations (id),
    resolve_operation_id bigint REFERENCES operations (id),
    CONSTRAINT no_self_gift CHECK (sender_id <> recipient_id),
    CONSTRAINT resolved_when_not_pending CHECK (
        (status = 'pending') = (resolved_at IS NULL)
        AND (status = 'pending') = (resolve_operation_id IS NULL)),
    CHECK (expires_at > created_at)
);
CREATE INDEX gifts_pending_recipient ON gifts (recipient_id, created_at, id) WHERE status = 'pending';
CREATE INDEX gifts_pending_sender ON gifts (sender_id) WHERE status = 'pending';
CREATE INDEX gifts_due ON gifts (expires_at, id) WHERE status = 'pending';
CREATE INDEX gifts_sender_created ON gifts (sender_id, created_at);

CREATE TABLE rewards (
    code        text PRIMARY KEY CHECK (code ~ '^[a-z0-9][a-z0-9_-]{1,63}$'),
    category    text NOT NULL
                CHECK (category IN ('minutes', 'sms_mms', 'internet', 'certificates', 'gifts', 'subscriptions')),
    -- {"ru": "...", "en": "..."}
    title       jsonb NOT NULL CHECK (jsonb_typeof(title) = 'object'),
    description jsonb NOT NULL CHECK (jsonb_typeof(description) = 'object'),
    price       bigint NOT NULL CHECK (price > 0),
    active      boolean NOT NULL DEFAULT true,
    position    integer NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE redemptions (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id        bigint NOT NULL REFERENCES subscribers (id),
    reward_code          text NOT NULL REFERENCES rewards (code),
    points               bigint NOT NULL CHECK (points > 0),
    status               text NOT NULL DEFAULT 'reserved'
                         CHECK (status IN ('reserved', 'fulfilled', 'failed')),
    created_at           timestamptz NOT NULL,
    resolved_at          timestamptz,
    operation_id         bigint NOT NULL REFERENCES operations (id),
    resolve_operation_id bigint REFERENCES operations (id),
    failure_reason       text,
    CONSTRAINT resolved_when_not_reserved CHECK (
        (status = 'reserved') = (resolved_at IS NULL)
        AND (status = 'reserved') = (resolve_operation_id IS NULL))
);
CREATE INDEX redemptions_reserved ON redemptions (subscriber_id) WHERE status = 'reserved';

-- Notifications written in the same transaction as the change causing them.
CREATE TABLE outbox (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event           text NOT NULL CHECK (event IN (
                        'gift_received', 'gift_accepted', 'gift_declined', 'gift_cancelled',
                        'gift_expired', 'gift_returned', 'reward_fulfilled', 'reward_failed')),
    msisdn          text NOT NULL,
    payload         jsonb NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at timestamptz NOT NULL,
    last_error      text,
    operation_id    bigint REFERENCES operations (id),
    created_at      timestamptz NOT NULL,
    sent_at         timestamptz
);
CREATE INDEX outbox_due ON outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX outbox_status ON outbox (status, id);

-- ---------------------------------------------------------------------------
-- Guards in the database itself.

-- Each operation's postings sum to zero, and only a succeeded operation has
-- postings. Checked at commit (deferred), after all of an operation's entries
-- are in.
CREATE FUNCTION ledger_postings_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    total  bigint;
    status text;
BEGIN
    SELECT coalesce(sum(amount), 0) INTO total FROM postings WHERE operation_id = NEW.operation_id;
    IF total <> 0 THEN
        RAISE EXCEPTION 'postings of operation % sum to %, not zero', NEW.operation_id, total
            USING ERRCODE = 'check_violation';
    END IF;
    SELECT o.status INTO status FROM operations o WHERE o.id = NEW.operation_id;
    IF status IS DISTINCT FROM 'succeeded' THEN
        RAISE EXCEPTION 'operation % has postings but is %', NEW.operation_id, coalesce(status, 'incomplete')
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER postings_balanced
    AFTER INSERT ON postings
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION ledger_postings_balanced();

CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER postings_no_truncate BEFORE TRUNCATE ON postings
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER lot_moves_append_only BEFORE UPDATE OR DELETE ON lot_moves
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER lot_moves_no_truncate BEFORE TRUNCATE ON lot_moves
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER operations_no_delete BEFORE DELETE ON operations
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER operations_no_truncate BEFORE TRUNCATE ON operations
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- An operation is completed once (in the transaction that inserted it); its
-- key, request and stored result never change afterwards.
CREATE FUNCTION ledger_operation_complete_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IS NOT NULL
       OR NEW.op_id <> OLD.op_id OR NEW.kind <> OLD.kind OR NEW.request_hash <> OLD.request_hash THEN
        RAISE EXCEPTION 'operation % is already recorded and cannot change', OLD.op_id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER operations_complete_once BEFORE UPDATE ON operations
    FOR EACH ROW EXECUTE FUNCTION ledger_operation_complete_once();

-- A gift or redemption leaves its initial state once and never changes again.
CREATE FUNCTION ledger_resolve_once() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status <> TG_ARGV[0] THEN
        RAISE EXCEPTION '% % is already % and cannot change', TG_TABLE_NAME, OLD.id, OLD.status
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF NEW.points <> OLD.points OR NEW.created_at <> OLD.created_at
       OR NEW.operation_id <> OLD.operation_id THEN
        RAISE EXCEPTION '% %: only the resolution may change', TG_TABLE_NAME, OLD.id
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gifts_resolve_once BEFORE UPDATE ON gifts
    FOR EACH ROW EXECUTE FUNCTION ledger_resolve_once('pending');
CREATE TRIGGER redemptions_resolve_once BEFORE UPDATE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION ledger_resolve_once('reserved');
CREATE TRIGGER gifts_no_delete BEFORE DELETE ON gifts
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER redemptions_no_delete BEFORE DELETE ON redemptions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
