"""``ledger check``: verify every invariant of the ledger in one snapshot.

Each invariant is one query returning the rows that break it. The checks run
in a read-only REPEATABLE READ transaction, so they see one consistent state
while the service keeps running.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg


@dataclass(frozen=True)
class Violation:
    """One broken invariant, with the row(s) that break it."""

    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant}: {self.detail}"


# name -> (description, query returning one row per violation, with a "detail" column)
INVARIANTS: dict[str, tuple[str, str]] = {
    "system_accounts": (
        "exactly one account of each system kind, without a stored balance",
        """
        SELECT k.kind || ': ' || count(a.id) || ' accounts' AS detail
        FROM unnest(ARRAY['issuance', 'escrow', 'redemption', 'expired']) AS k(kind)
        LEFT JOIN accounts a ON a.kind = k.kind
        GROUP BY k.kind HAVING count(a.id) <> 1
        """,
    ),
    "account_per_subscriber": (
        "every subscriber has exactly one points account",
        """
        SELECT 'subscriber ' || s.id || ' has ' || count(a.id) || ' accounts' AS detail
        FROM subscribers s LEFT JOIN accounts a ON a.subscriber_id = s.id
        GROUP BY s.id HAVING count(a.id) <> 1
        """,
    ),
    "all_accounts_sum_to_zero": (
        "stored subscriber balances plus derived system balances sum to zero",
        """
        SELECT 'sum over all accounts is ' || total AS detail FROM (
            SELECT (SELECT coalesce(sum(balance), 0) FROM accounts WHERE kind = 'subscriber')
                 + (SELECT coalesce(sum(p.amount), 0) FROM postings p
                    JOIN accounts a ON a.id = p.account_id WHERE a.kind <> 'subscriber') AS total
        ) t WHERE total <> 0
        """,
    ),
    "operation_balanced": (
        "each operation's postings sum to zero",
        """
        SELECT 'operation ' || operation_id || ' sums to ' || sum(amount) AS detail
        FROM postings GROUP BY operation_id HAVING sum(amount) <> 0
        """,
    ),
    "only_succeeded_operations_post": (
        "every operation is completed, and only succeeded ones have postings",
        """
        SELECT 'operation ' || o.op_id || ' is ' || coalesce(o.status, 'incomplete')
               || ' with ' || count(p.id) || ' postings' AS detail
        FROM operations o LEFT JOIN postings p ON p.operation_id = o.id
        GROUP BY o.id
        HAVING o.status IS NULL OR (o.status = 'rejected' AND count(p.id) > 0)
        """,
    ),
    "balance_equals_postings": (
        "each subscriber balance equals the sum of its entries",
        """
        SELECT 'account ' || a.id || ' balance ' || a.balance || ' but entries sum to '
               || coalesce(p.total, 0) AS detail
        FROM accounts a
        LEFT JOIN (SELECT account_id, sum(amount) AS total FROM postings GROUP BY account_id) p
               ON p.account_id = a.id
        WHERE a.kind = 'subscriber' AND a.balance <> coalesce(p.total, 0)
        """,
    ),
    "balance_equals_lots": (
        "each subscriber balance equals the points left in its lots",
        """
        SELECT 'account ' || a.id || ' balance ' || a.balance || ' but lots hold '
               || coalesce(l.total, 0) AS detail
        FROM accounts a
        LEFT JOIN (SELECT account_id, sum(remaining) AS total FROM point_lots GROUP BY account_id) l
               ON l.account_id = a.id
        WHERE a.kind = 'subscriber' AND a.balance <> coalesce(l.total, 0)
        """,
    ),
    "balance_after_chain": (
        "each entry's balance_after is the running sum of its subscriber account (NULL on system)",
        """
        SELECT 'posting ' || id || ' balance_after ' || coalesce(balance_after::text, 'NULL')
               || ', expected ' || coalesce(expected::text, 'NULL') AS detail
        FROM (
            SELECT p.id, p.balance_after,
                   CASE WHEN a.kind = 'subscriber' THEN
                       sum(p.amount) OVER (PARTITION BY p.account_id ORDER BY p.id) END AS expected
            FROM postings p JOIN accounts a ON a.id = p.account_id
        ) t WHERE balance_after IS DISTINCT FROM expected
        """,
    ),
    "no_negative_balance": (
        "no subscriber balance is below zero",
        """
        SELECT 'account ' || id || ' balance ' || balance AS detail
        FROM accounts WHERE kind = 'subscriber' AND balance < 0
        """,
    ),
    "escrow_equals_pending": (
        "escrow holds exactly the pending gifts and reserved redemptions",
        """
        SELECT 'escrow ' || e.total || ' but pending gifts ' || g.total
               || ' and reserved redemptions ' || r.total AS detail
        FROM (SELECT coalesce(sum(p.amount), 0) AS total FROM postings p
              JOIN accounts a ON a.id = p.account_id WHERE a.kind = 'escrow') e,
             (SELECT coalesce(sum(points), 0) AS total FROM gifts WHERE status = 'pending') g,
             (SELECT coalesce(sum(points), 0) AS total FROM redemptions
              WHERE status = 'reserved') r
        WHERE e.total <> g.total + r.total
        """,
    ),
    "redemption_equals_fulfilled": (
        "the redemption account holds exactly the fulfilled redemptions",
        """
        SELECT 'redemption account ' || x.total || ' but fulfilled ' || f.total AS detail
        FROM (SELECT coalesce(sum(p.amount), 0) AS total FROM postings p
              JOIN accounts a ON a.id = p.account_id WHERE a.kind = 'redemption') x,
             (SELECT coalesce(sum(points), 0) AS total FROM redemptions
              WHERE status = 'fulfilled') f
        WHERE x.total <> f.total
        """,
    ),
    "issuance_equals_accruals": (
        "issuance is minus the points of all accrued lots",
        """
        SELECT 'issuance ' || i.total || ' but accrued lots ' || l.total AS detail
        FROM (SELECT coalesce(sum(p.amount), 0) AS total FROM postings p
              JOIN accounts a ON a.id = p.account_id WHERE a.kind = 'issuance') i,
             (SELECT coalesce(sum(l.amount), 0) AS total FROM point_lots l
              JOIN operations o ON o.id = l.operation_id WHERE o.kind = 'accrue') l
        WHERE i.total <> -l.total
        """,
    ),
    "expired_equals_expiries": (
        "the expired account holds exactly the points taken from lots by expiry",
        """
        SELECT 'expired account ' || x.total || ' but expiries took ' || m.total AS detail
        FROM (SELECT coalesce(sum(p.amount), 0) AS total FROM postings p
              JOIN accounts a ON a.id = p.account_id WHERE a.kind = 'expired') x,
             (SELECT coalesce(-sum(m.amount), 0) AS total FROM lot_moves m
              JOIN operations o ON o.id = m.operation_id WHERE o.kind = 'expire_points') m
        WHERE x.total <> m.total
        """,
    ),
    "lot_remaining_matches_moves": (
        "each lot's remaining points are its amount plus its moves, within 0..amount",
        """
        SELECT 'lot ' || l.id || ' remaining ' || l.remaining || ', amount ' || l.amount
               || ', moves ' || coalesce(m.total, 0) AS detail
        FROM point_lots l
        LEFT JOIN (SELECT lot_id, sum(amount) AS total FROM lot_moves GROUP BY lot_id) m
               ON m.lot_id = l.id
        WHERE l.remaining <> l.amount + coalesce(m.total, 0)
           OR l.remaining < 0 OR l.remaining > l.amount
        """,
    ),
    "lot_moves_match_postings": (
        "each operation moves as many points in lots as in subscriber entries",
        """
        SELECT 'operation ' || coalesce(p.operation_id, m.operation_id) || ' posts '
               || coalesce(p.total, 0) || ' but moves lots by ' || coalesce(m.total, 0) AS detail
        FROM (SELECT p.operation_id, sum(p.amount) AS total FROM postings p
              JOIN accounts a ON a.id = p.account_id WHERE a.kind = 'subscriber'
              GROUP BY p.operation_id) p
        FULL JOIN (
            SELECT operation_id, sum(amount) AS total FROM (
                SELECT operation_id, amount FROM lot_moves
                UNION ALL SELECT operation_id, amount FROM point_lots
            ) u GROUP BY operation_id
        ) m ON m.operation_id = p.operation_id
        WHERE coalesce(p.total, 0) <> coalesce(m.total, 0)
        """,
    ),
    "gift_points_in_lots": (
        "each gift took exactly its points from the sender's lots",
        """
        SELECT 'gift ' || g.id || ' of ' || g.points || ' took ' || coalesce(m.total, 0)
               || ' from lots' AS detail
        FROM gifts g
        LEFT JOIN (SELECT operation_id, -sum(amount) AS total FROM lot_moves
                   GROUP BY operation_id) m ON m.operation_id = g.operation_id
        WHERE g.points <> coalesce(m.total, 0)
        """,
    ),
}


async def check(pool: asyncpg.Pool) -> list[Violation]:
    """Every violated invariant (an empty list means the ledger is sound)."""
    violations: list[Violation] = []
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        for name, (_description, query) in INVARIANTS.items():
            for row in await conn.fetch(query):
                violations.append(Violation(name, row["detail"]))
    return violations
