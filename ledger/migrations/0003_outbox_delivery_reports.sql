-- Delivery reports of sent notifications (the SMS gateway's DLRs).
--
-- A report belongs to one attempt (the outbox's ``attempts`` when it was sent):
-- a late report of an earlier attempt never overrides the current one.
-- ``dlr_status``: 'buffered' (the SMSC holds it: phone off), 'accepted' (the
-- SMSC took it), 'delivered' (on the phone), 'failed' (not delivered; the
-- message went back to pending with backoff, or was parked when permanent).
-- The first final report (delivered or failed) of an attempt decides it.

ALTER TABLE outbox
    ADD COLUMN dlr_status  text CHECK (dlr_status IN ('buffered', 'accepted', 'delivered', 'failed')),
    ADD COLUMN dlr_attempt integer CHECK (dlr_attempt >= 1),
    ADD COLUMN dlr_at      timestamptz,
    ADD COLUMN dlr_detail  text,
    ADD CONSTRAINT dlr_complete CHECK (
        (dlr_status IS NULL) = (dlr_attempt IS NULL) AND (dlr_status IS NULL) = (dlr_at IS NULL)
    );
