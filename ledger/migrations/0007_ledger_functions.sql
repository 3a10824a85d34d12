-- One round trip per ledger operation: gift, accept_gift and redeem run as
-- one PL/pgSQL function each, called as a single statement, which is its own
-- transaction. Each does what ledger/_tx.py's run_operation and the Python
-- bodies did, in the same order and with the same locks:
--
-- 1. ledger_begin inserts the operations row for the idempotency key (a
--    concurrent request with the same key waits on the unique index); a key
--    already recorded answers 'replayed' with the stored result, or
--    'conflict' when the request hash differs, and changes nothing.
-- 2. The body checks the rules, locks the subscriber account, moves points
--    (lots soonest-expiring first, balanced posting pairs) and queues the
--    notification in the outbox.
-- 3. ledger_complete stores the outcome (a rejection too) with the operation.
--
-- Outcomes are JSON exactly as ledger.results.encode writes them
-- ({"code", "value", "details"}), so Python decodes a first answer and a
-- replay the same way, and rows written by either path read alike. Times,
-- limits and the request hash come from Python (the clock, the settings).
-- Deadlocks and serialization failures abort the whole statement; Python
-- runs it again with the same key (with_retries).
--
-- CREATE OR REPLACE throughout: the file can be run again by hand on a
-- database that applied an earlier draft of it (psql -f), changing nothing else.

CREATE OR REPLACE FUNCTION ledger_begin(
    p_key text, p_kind text, p_hash text, p_now timestamptz,
    OUT op_pk bigint, OUT state text, OUT result jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    stored_hash text;
BEGIN
    INSERT INTO operations (op_id, kind, request_hash, created_at)
    VALUES (p_key, p_kind, p_hash, p_now)
    ON CONFLICT (op_id) DO NOTHING
    RETURNING id INTO op_pk;
    IF op_pk IS NOT NULL THEN
        state := 'new';
        RETURN;
    END IF;
    -- A new snapshot: the row the unique index made us wait for is visible.
    SELECT o.request_hash, o.result INTO stored_hash, result FROM operations o WHERE o.op_id = p_key;
    IF stored_hash IS DISTINCT FROM p_hash THEN
        state := 'conflict';
        result := NULL;
    ELSE
        state := 'replayed';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION ledger_complete(p_op bigint, p_subscriber bigint, p_outcome jsonb)
RETURNS jsonb LANGUAGE plpgsql AS $$
BEGIN
    UPDATE operations
    SET status = CASE WHEN p_outcome->>'code' = 'ok' THEN 'succeeded' ELSE 'rejected' END,
        code = p_outcome->>'code', result = p_outcome, subscriber_id = p_subscriber
    WHERE id = p_op;
    RETURN p_outcome;
END $$;

-- Helpers are PL/pgSQL, not LANGUAGE sql: PL/pgSQL keeps its plans for the
-- session, while a SQL function that cannot be inlined is parsed and planned
-- again at every call.
CREATE OR REPLACE FUNCTION ledger_outcome(p_code text, p_value jsonb DEFAULT NULL, p_details jsonb DEFAULT '{}')
RETURNS jsonb LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN jsonb_build_object('code', p_code, 'value', p_value, 'details', coalesce(p_details, '{}'));
END $$;

-- Lock one subscriber account (the caller's only one; see _accounts.py).
CREATE OR REPLACE FUNCTION ledger_lock_account(p_account bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM accounts WHERE id = p_account AND kind = 'subscriber' FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'subscriber accounts not found: {%}', p_account;
    END IF;
END $$;

-- _accounts._post: change a subscriber balance against a system account,
-- guarded; the new balance, or NULL when a debit would go below zero.
CREATE OR REPLACE FUNCTION ledger_post(
    p_op bigint, p_account bigint, p_amount bigint, p_system text, p_now timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    new_balance bigint;
BEGIN
    UPDATE accounts SET balance = balance + p_amount
    WHERE id = p_account AND balance + p_amount >= 0
    RETURNING balance INTO new_balance;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    INSERT INTO postings (operation_id, account_id, amount, balance_after, created_at)
    VALUES (p_op, p_account, p_amount, new_balance, p_now),
           (p_op, (SELECT id FROM accounts WHERE kind = p_system), -p_amount, NULL, p_now);
    RETURN new_balance;
END $$;

-- _accounts._move_lots: change lots' remaining points and record each move, in order.
CREATE OR REPLACE FUNCTION ledger_move_lots(p_op bigint, p_lots bigint[], p_amounts bigint[], p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    changed integer;
BEGIN
    UPDATE point_lots l SET remaining = l.remaining + m.amount
    FROM unnest(p_lots, p_amounts) AS m(lot_id, amount) WHERE l.id = m.lot_id;
    GET DIAGNOSTICS changed = ROW_COUNT;
    IF changed <> cardinality(p_lots) THEN
        RAISE EXCEPTION 'lot moves did not apply: % of % lots', changed, cardinality(p_lots);
    END IF;
    INSERT INTO lot_moves (operation_id, lot_id, amount, created_at)
    SELECT p_op, m.lot_id, m.amount, p_now
    FROM unnest(p_lots, p_amounts) WITH ORDINALITY AS m(lot_id, amount, n) ORDER BY m.n;
END $$;

-- _accounts.debit: take p_points from a locked account, soonest-expiring lots
-- first. Returns the points available before; writes nothing when that is
-- less than p_points.
CREATE OR REPLACE FUNCTION ledger_debit(
    p_op bigint, p_account bigint, p_points bigint, p_system text, p_now timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    available bigint;
    lot_ids bigint[];
    remainders bigint[];
    take_ids bigint[] := '{}';
    take_parts bigint[] := '{}';
    needed bigint := p_points;
    part bigint;
BEGIN
    SELECT coalesce(sum(remaining), 0), array_agg(id ORDER BY expires_at, id),
           array_agg(remaining ORDER BY expires_at, id)
    INTO available, lot_ids, remainders
    FROM point_lots WHERE account_id = p_account AND remaining > 0 AND expires_at > p_now;
    IF available < p_points THEN
        RETURN available;
    END IF;
    FOR i IN 1 .. cardinality(lot_ids) LOOP
        EXIT WHEN needed = 0;
        part := least(needed, remainders[i]);
        take_ids := take_ids || lot_ids[i];
        take_parts := take_parts || -part;
        needed := needed - part;
    END LOOP;
    IF ledger_post(p_op, p_account, -p_points, p_system, p_now) IS NULL THEN
        RAISE EXCEPTION 'account %: guarded debit refused despite enough lots', p_account;
    END IF;
    PERFORM ledger_move_lots(p_op, take_ids, take_parts, p_now);
    RETURN available;
END $$;

CREATE OR REPLACE FUNCTION ledger_available(p_account bigint, p_now timestamptz)
RETURNS bigint LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT coalesce(sum(remaining), 0)::bigint FROM point_lots
            WHERE account_id = p_account AND remaining > 0 AND expires_at > p_now);
END $$;

CREATE OR REPLACE FUNCTION ledger_emit(p_op bigint, p_event text, p_msisdn text, p_payload jsonb, p_now timestamptz)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO outbox (event, msisdn, payload, next_attempt_at, operation_id, created_at)
    VALUES (p_event, p_msisdn, p_payload, p_now, p_op, p_now);
END $$;

-- ---------------------------------------------------------------------------
-- gift: codes in the order ledger.gift documents them. p_recipient is NULL
-- when Python could not read the number (invalid_recipient).

CREATE OR REPLACE FUNCTION ledger_gift_body(
    p_op bigint, p_now timestamptz, p_sender text, p_recipient text, p_points bigint,
    p_min bigint, p_max bigint, p_cap bigint, p_day_start timestamptz,
    p_expires_at timestamptz, p_expires_text text,
    OUT subscriber_id bigint, OUT outcome jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    src record;
    dst record;
    sent_today bigint;
    available bigint;
    new_gift bigint;
BEGIN
    SELECT s.id, a.id AS account_id, s.msisdn, s.status, s.language INTO src
    FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id WHERE s.msisdn = p_sender;
    IF NOT FOUND OR src.status = 'not_enrolled' THEN
        outcome := ledger_outcome('not_enrolled');
        RETURN;
    ELSIF src.status = 'blocked' THEN
        outcome := ledger_outcome('blocked');
        RETURN;
    END IF;
    subscriber_id := src.id;
    IF p_recipient IS NULL THEN
        outcome := ledger_outcome('invalid_recipient');
        RETURN;
    ELSIF p_recipient = p_sender THEN
        outcome := ledger_outcome('self_gift');
        RETURN;
    ELSIF p_points < p_min THEN
        outcome := ledger_outcome('below_minimum', NULL, jsonb_build_object('minimum', p_min));
        RETURN;
    ELSIF p_points > p_max THEN
        outcome := ledger_outcome('above_maximum', NULL, jsonb_build_object('maximum', p_max));
        RETURN;
    END IF;
    SELECT s.id, s.msisdn, s.status, s.language INTO dst
    FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id WHERE s.msisdn = p_recipient;
    IF NOT FOUND OR dst.status <> 'active' THEN
        outcome := ledger_outcome('recipient_not_enrolled');
        RETURN;
    END IF;
    -- The sender's lock serialises their gifts, so the cap holds under races.
    PERFORM ledger_lock_account(src.account_id);
    SELECT coalesce(sum(points), 0) INTO sent_today FROM gifts
    WHERE sender_id = src.id AND created_at >= p_day_start AND status <> 'cancelled';
    IF sent_today + p_points > p_cap THEN
        outcome := ledger_outcome('daily_cap_exceeded', NULL,
            jsonb_build_object('cap', p_cap, 'allowance', greatest(0, p_cap - sent_today)));
        RETURN;
    END IF;
    available := ledger_debit(p_op, src.account_id, p_points, 'escrow', p_now);
    IF available < p_points THEN
        outcome := ledger_outcome('insufficient_points', NULL, jsonb_build_object('available', available));
        RETURN;
    END IF;
    INSERT INTO gifts (sender_id, recipient_id, points, created_at, expires_at, operation_id)
    VALUES (src.id, dst.id, p_points, p_now, p_expires_at, p_op)
    RETURNING id INTO new_gift;
    PERFORM ledger_emit(p_op, 'gift_received', dst.msisdn, jsonb_build_object(
        'language', dst.language, 'gift_id', new_gift, 'sender', src.msisdn,
        'points', p_points, 'expires_at', p_expires_text), p_now);
    outcome := ledger_outcome('ok', jsonb_build_object(
        'gift_id', new_gift, 'points', p_points, 'recipient', dst.msisdn,
        'expires_at', p_expires_text, 'available', available - p_points));
END $$;

CREATE OR REPLACE FUNCTION ledger_gift(
    p_key text, p_hash text, p_now timestamptz, p_sender text, p_recipient text,
    p_points bigint, p_min bigint, p_max bigint, p_cap bigint, p_day_start timestamptz,
    p_expires_at timestamptz, p_expires_text text,
    OUT state text, OUT result jsonb
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    op bigint;
    body record;
BEGIN
    SELECT b.op_pk, b.state, b.result INTO op, state, result
    FROM ledger_begin(p_key, 'gift', p_hash, p_now) b;
    IF state <> 'new' THEN
        RETURN;
    END IF;
    body := ledger_gift_body(op, p_now, p_sender, p_recipient, p_points, p_min, p_max, p_cap,
                             p_day_start, p_expires_at, p_expires_text);
    result := ledger_complete(op, body.subscriber_id, body.outcome);
END $$;

-- ---------------------------------------------------------------------------
-- accept_gift: the given gift or the recipient's oldest pending one.

-- gifts._resolve: the one guarded state change of a gift by its recipient
-- (p_party 'recipient') or sender ('sender'); the gift row, or NULL with a code.
CREATE OR REPLACE FUNCTION ledger_resolve_gift(
    p_op bigint, p_now timestamptz, p_party text, p_party_id bigint, p_gift bigint,
    p_status text, OUT gift gifts, OUT code text
) LANGUAGE plpgsql AS $$
DECLARE
    found_status text;
    found_expires timestamptz;
BEGIN
    IF p_gift IS NULL THEN
        SELECT g.id INTO p_gift FROM gifts g
        WHERE g.recipient_id = p_party_id AND g.status = 'pending' AND g.expires_at > p_now
        ORDER BY g.created_at, g.id LIMIT 1
        FOR UPDATE;
        IF NOT FOUND THEN
            code := 'no_pending_gift';
            RETURN;
        END IF;
    END IF;
    UPDATE gifts g SET status = p_status, resolved_at = p_now, resolve_operation_id = p_op
    WHERE g.id = p_gift
      AND (CASE p_party WHEN 'recipient' THEN g.recipient_id ELSE g.sender_id END) = p_party_id
      AND g.status = 'pending' AND g.expires_at > p_now
    RETURNING g.* INTO gift;
    IF FOUND THEN
        code := 'ok';
        RETURN;
    END IF;
    gift := NULL;
    SELECT g.status, g.expires_at INTO found_status, found_expires FROM gifts g
    WHERE g.id = p_gift
      AND (CASE p_party WHEN 'recipient' THEN g.recipient_id ELSE g.sender_id END) = p_party_id;
    IF NOT FOUND THEN
        code := 'no_pending_gift';
    ELSIF found_status = 'expired' OR (found_status = 'pending' AND found_expires <= p_now) THEN
        code := 'gift_expired';
    ELSE
        code := 'gift_not_pending';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION ledger_accept_gift_body(
    p_op bigint, p_now timestamptz, p_recipient text, p_gift bigint,
    OUT subscriber_id bigint, OUT outcome jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    dst record;
    resolved record;
    sender record;
    received bigint;
BEGIN
    SELECT s.id, a.id AS account_id, s.msisdn INTO dst
    FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id WHERE s.msisdn = p_recipient;
    IF NOT FOUND THEN
        outcome := ledger_outcome('no_pending_gift');
        RETURN;
    END IF;
    subscriber_id := dst.id;
    resolved := ledger_resolve_gift(p_op, p_now, 'recipient', dst.id, p_gift, 'accepted');
    IF resolved.code <> 'ok' THEN
        outcome := ledger_outcome(resolved.code);
        RETURN;
    END IF;
    PERFORM ledger_lock_account(dst.account_id);
    -- The points keep the expiry dates they had with the sender: one new lot
    -- per lot the gift consumed (gifts._accounts.credit_new_lots).
    SELECT coalesce(sum(-m.amount), 0) INTO received FROM lot_moves m
    WHERE m.operation_id = (resolved.gift).operation_id AND m.amount < 0;
    IF ledger_post(p_op, dst.account_id, received, 'escrow', p_now) IS NULL THEN
        RAISE EXCEPTION 'account %: credit refused', dst.account_id;
    END IF;
    INSERT INTO point_lots
        (account_id, operation_id, source_lot_id, amount, remaining, expires_at, created_at)
    SELECT dst.account_id, p_op, m.lot_id, -m.amount, -m.amount, l.expires_at, p_now
    FROM lot_moves m JOIN point_lots l ON l.id = m.lot_id
    WHERE m.operation_id = (resolved.gift).operation_id AND m.amount < 0
    ORDER BY m.id;
    SELECT s.msisdn, s.language INTO sender FROM subscribers s WHERE s.id = (resolved.gift).sender_id;
    PERFORM ledger_emit(p_op, 'gift_accepted', sender.msisdn, jsonb_build_object(
        'language', sender.language, 'gift_id', (resolved.gift).id,
        'points', (resolved.gift).points, 'recipient', dst.msisdn), p_now);
    outcome := ledger_outcome('ok', jsonb_build_object(
        'gift_id', (resolved.gift).id, 'points', (resolved.gift).points, 'sender', sender.msisdn,
        'available', ledger_available(dst.account_id, p_now),
        'remaining', (SELECT count(*) FROM gifts g WHERE g.recipient_id = dst.id
                      AND g.status = 'pending' AND g.expires_at > p_now)));
END $$;

CREATE OR REPLACE FUNCTION ledger_accept_gift(
    p_key text, p_hash text, p_now timestamptz, p_recipient text, p_gift bigint,
    OUT state text, OUT result jsonb
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    op bigint;
    body record;
BEGIN
    SELECT b.op_pk, b.state, b.result INTO op, state, result
    FROM ledger_begin(p_key, 'accept_gift', p_hash, p_now) b;
    IF state <> 'new' THEN
        RETURN;
    END IF;
    body := ledger_accept_gift_body(op, p_now, p_recipient, p_gift);
    result := ledger_complete(op, body.subscriber_id, body.outcome);
END $$;

-- ---------------------------------------------------------------------------
-- redeem: reserve the reward's price (subscriber -> escrow). The title is in
-- the subscriber's language, else the default language, else any.

CREATE OR REPLACE FUNCTION ledger_redeem_body(
    p_op bigint, p_now timestamptz, p_msisdn text, p_reward text, p_default_language text,
    OUT subscriber_id bigint, OUT outcome jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    sub record;
    reward record;
    available bigint;
    new_redemption bigint;
BEGIN
    SELECT s.id, a.id AS account_id, s.status, s.language INTO sub
    FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id WHERE s.msisdn = p_msisdn;
    IF NOT FOUND OR sub.status = 'not_enrolled' THEN
        outcome := ledger_outcome('not_enrolled');
        RETURN;
    ELSIF sub.status = 'blocked' THEN
        outcome := ledger_outcome('blocked');
        RETURN;
    END IF;
    subscriber_id := sub.id;
    SELECT r.code, r.title, r.price INTO reward FROM rewards r WHERE r.code = p_reward AND r.active;
    IF NOT FOUND THEN
        outcome := ledger_outcome('unknown_reward');
        RETURN;
    END IF;
    PERFORM ledger_lock_account(sub.account_id);
    available := ledger_debit(p_op, sub.account_id, reward.price, 'escrow', p_now);
    IF available < reward.price THEN
        outcome := ledger_outcome('insufficient_points', NULL,
            jsonb_build_object('available', available, 'price', reward.price));
        RETURN;
    END IF;
    INSERT INTO redemptions (subscriber_id, reward_code, points, created_at, operation_id)
    VALUES (sub.id, reward.code, reward.price, p_now, p_op)
    RETURNING id INTO new_redemption;
    outcome := ledger_outcome('ok', jsonb_build_object(
        'redemption_id', new_redemption, 'reward_code', reward.code,
        'reward_title', coalesce(
            nullif(reward.title->>sub.language, ''),
            nullif(reward.title->>p_default_language, ''),
            (SELECT t.value FROM jsonb_each_text(reward.title) t LIMIT 1),
            ''),
        'points', reward.price, 'available', available - reward.price, 'status', 'reserved'));
END $$;

CREATE OR REPLACE FUNCTION ledger_redeem(
    p_key text, p_hash text, p_now timestamptz, p_msisdn text, p_reward text,
    p_default_language text, OUT state text, OUT result jsonb
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    op bigint;
    body record;
BEGIN
    SELECT b.op_pk, b.state, b.result INTO op, state, result
    FROM ledger_begin(p_key, 'redeem', p_hash, p_now) b;
    IF state <> 'new' THEN
        RETURN;
    END IF;
    body := ledger_redeem_body(op, p_now, p_msisdn, p_reward, p_default_language);
    result := ledger_complete(op, body.subscriber_id, body.outcome);
END $$;

-- ---------------------------------------------------------------------------
-- decline_gift: the recipient refuses the given gift or their oldest pending
-- one; the points go back to the sender's original lots (gifts._return_to_sender).

CREATE OR REPLACE FUNCTION ledger_decline_gift_body(
    p_op bigint, p_now timestamptz, p_recipient text, p_gift bigint,
    OUT subscriber_id bigint, OUT outcome jsonb
) LANGUAGE plpgsql AS $$
DECLARE
    dst record;
    resolved record;
    sender record;
    lot_ids bigint[];
    amounts bigint[];
BEGIN
    SELECT s.id, s.msisdn INTO dst
    FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id WHERE s.msisdn = p_recipient;
    IF NOT FOUND THEN
        outcome := ledger_outcome('no_pending_gift');
        RETURN;
    END IF;
    subscriber_id := dst.id;
    resolved := ledger_resolve_gift(p_op, p_now, 'recipient', dst.id, p_gift, 'declined');
    IF resolved.code <> 'ok' THEN
        outcome := ledger_outcome(resolved.code);
        RETURN;
    END IF;
    SELECT s.id, a.id AS account_id, s.msisdn, s.language INTO sender
    FROM subscribers s JOIN accounts a ON a.subscriber_id = s.id
    WHERE s.id = (resolved.gift).sender_id;
    PERFORM ledger_lock_account(sender.account_id);
    SELECT array_agg(m.lot_id ORDER BY m.id), array_agg(-m.amount ORDER BY m.id)
    INTO lot_ids, amounts
    FROM lot_moves m WHERE m.operation_id = (resolved.gift).operation_id AND m.amount < 0;
    IF ledger_post(p_op, sender.account_id, (SELECT sum(x) FROM unnest(amounts) x)::bigint,
                   'escrow', p_now) IS NULL THEN
        RAISE EXCEPTION 'account %: credit refused', sender.account_id;
    END IF;
    PERFORM ledger_move_lots(p_op, lot_ids, amounts, p_now);
    PERFORM ledger_emit(p_op, 'gift_declined', sender.msisdn, jsonb_build_object(
        'language', sender.language, 'gift_id', (resolved.gift).id,
        'points', (resolved.gift).points, 'recipient', dst.msisdn), p_now);
    outcome := ledger_outcome('ok', jsonb_build_object(
        'gift_id', (resolved.gift).id, 'points', (resolved.gift).points, 'sender', sender.msisdn,
        'remaining', (SELECT count(*) FROM gifts g WHERE g.recipient_id = dst.id
                      AND g.status = 'pending' AND g.expires_at > p_now)));
END $$;

CREATE OR REPLACE FUNCTION ledger_decline_gift(
    p_key text, p_hash text, p_now timestamptz, p_recipient text, p_gift bigint,
    OUT state text, OUT result jsonb
) LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan AS $$
DECLARE
    op bigint;
    body record;
BEGIN
    SELECT b.op_pk, b.state, b.result INTO op, state, result
    FROM ledger_begin(p_key, 'decline_gift', p_hash, p_now) b;
    IF state <> 'new' THEN
        RETURN;
    END IF;
    body := ledger_decline_gift_body(op, p_now, p_recipient, p_gift);
    result := ledger_complete(op, body.subscriber_id, body.outcome);
END $$;
