-- How a subscriber joined, the audit of blocks and unblocks, and the welcome SMS.
--
-- enrollment_channel: 'self' (USSD, IVR, SMS, or the operator's systems on the
-- subscriber's own request), 'shop' (a sales point), 'help_desk' (the 0890
-- operators' console), 'web' (the personal account). Staff channels name who
-- did it (enrollment_staff_id); document_checked says whether an identity
-- document was seen (NULL: not said). Numbers enrolled before this migration
-- keep NULL: nobody recorded how.

ALTER TABLE subscribers
    ADD COLUMN enrollment_channel text
        CHECK (enrollment_channel IN ('self', 'shop', 'help_desk', 'web')),
    ADD COLUMN enrollment_staff_id text
        CHECK (length(enrollment_staff_id) BETWEEN 1 AND 64),
    ADD COLUMN enrollment_document_checked boolean,
    ADD CONSTRAINT staff_channels_name_staff CHECK (
        enrollment_channel IS NULL OR enrollment_channel NOT IN ('shop', 'help_desk')
        OR enrollment_staff_id IS NOT NULL);

-- One row per block or unblock that changed or confirmed a status: who asked
-- (the API caller or console operator, and the staff member they named), why,
-- when, and the ledger operation that did it. Append-only.
CREATE TABLE subscriber_blocks (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    subscriber_id bigint NOT NULL REFERENCES subscribers (id),
    action        text NOT NULL CHECK (action IN ('block', 'unblock')),
    reason        text NOT NULL CHECK (length(reason) BETWEEN 1 AND 500),
    actor         text NOT NULL CHECK (length(actor) BETWEEN 1 AND 64),
    staff_id      text CHECK (length(staff_id) BETWEEN 1 AND 64),
    -- Whether the status changed (false: it already was what was asked).
    changed       boolean NOT NULL,
    -- Pending gifts to the subscriber sent back to their senders by a block.
    gifts_returned integer NOT NULL DEFAULT 0 CHECK (gifts_returned >= 0),
    operation_id  bigint NOT NULL UNIQUE REFERENCES operations (id),
    created_at    timestamptz NOT NULL
);
CREATE INDEX subscriber_blocks_subscriber ON subscriber_blocks (subscriber_id, id);
CREATE TRIGGER subscriber_blocks_append_only BEFORE UPDATE OR DELETE ON subscriber_blocks
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER subscriber_blocks_no_truncate BEFORE TRUNCATE ON subscriber_blocks
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- The welcome SMS goes through the outbox, committed with the enrolment.
ALTER TABLE outbox DROP CONSTRAINT outbox_event_check;
ALTER TABLE outbox ADD CONSTRAINT outbox_event_check CHECK (event IN (
    'gift_received', 'gift_accepted', 'gift_declined', 'gift_cancelled',
    'gift_expired', 'gift_returned', 'reward_fulfilled', 'reward_failed', 'login_code',
    'welcome'));

-- A gift is only ever pending to an active member. ``gift`` reads the
-- recipient's status without a lock; a block committing in between would
-- leave a gift pending to a blocked member after the block returned the
-- others. This guard waits for such a block (the row lock) and then refuses
-- with a serialization failure, which the ledger retries: the retry reads
-- the block and answers recipient_not_enrolled. (The foreign key takes the
-- same KEY SHARE lock anyway.)
CREATE FUNCTION ledger_gift_to_active_member() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM subscribers WHERE id = NEW.recipient_id AND status = 'active' FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'gift to subscriber % who is not an active member', NEW.recipient_id
            USING ERRCODE = 'serialization_failure';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER gifts_to_active_members BEFORE INSERT ON gifts
    FOR EACH ROW EXECUTE FUNCTION ledger_gift_to_active_member();
