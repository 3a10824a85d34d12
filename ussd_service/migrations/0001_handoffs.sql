-- Sessions handed to a human operator: a callback request (USSD) or a
-- transferred call (IVR), with what the subscriber already did.
CREATE TABLE handoffs (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- Derived from the session and hop, so a retried hop never queues twice.
    handoff_key  text NOT NULL UNIQUE,
    msisdn       text NOT NULL,
    channel      text NOT NULL CHECK (channel IN ('ussd', 'ivr', 'sms')),
    language     text NOT NULL,
    reason       text NOT NULL,
    breadcrumb   jsonb NOT NULL DEFAULT '[]'::jsonb,
    balance      jsonb,
    status       text NOT NULL DEFAULT 'waiting'
                 CHECK (status IN ('waiting', 'claimed', 'closed')),
    claimed_by   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    claimed_at   timestamptz,
    closed_at    timestamptz
);

CREATE INDEX handoffs_status_created ON handoffs (status, created_at, id);
