-- Help-desk operators of the web console (``ussd-service operator add NAME``)
-- and the audit log of everything they do there.
CREATE TABLE operators (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{1,63}$'),
    -- argon2id, in the PHC string format (parameters and salt inside).
    password_hash   text NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    active          boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    -- A new password signs out the sessions opened with the old one.
    password_set_at timestamptz NOT NULL DEFAULT now()
);

-- Append-only: one row per action (sign-in, failed sign-in, claim, close,
-- subscriber viewed, enrolment, sign-out).
CREATE TABLE operator_audit (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operator_id   bigint REFERENCES operators (id),
    -- The name as typed (a failed sign-in may name no operator).
    operator_name text NOT NULL CHECK (length(operator_name) <= 64),
    action        text NOT NULL,
    channel       text NOT NULL DEFAULT 'help_desk',
    msisdn        text,
    handoff_id    bigint REFERENCES handoffs (id),
    client        text,
    details       jsonb NOT NULL DEFAULT '{}'::jsonb,
    at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operator_audit_operator ON operator_audit (operator_id, at);
CREATE INDEX operator_audit_msisdn ON operator_audit (msisdn, at) WHERE msisdn IS NOT NULL;

CREATE FUNCTION operator_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operator_audit is append-only';
END
$$;
CREATE TRIGGER operator_audit_append_only BEFORE UPDATE OR DELETE ON operator_audit
    FOR EACH ROW EXECUTE FUNCTION operator_audit_append_only();
