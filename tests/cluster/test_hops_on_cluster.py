"""The hop tests' core flows again, served through the Redis Cluster client.

A session's record lives on the master of its hash tag, the subscriber's
resume pointer on the master of another tag, the SMS reply cache, drop-off
counters and deferred handoffs on others still: any command or script that
spanned two slots would fail here with CROSSSLOT. The tests are the very
functions of ``tests/hops`` (copied, so marks added here stay here); only the
fixtures differ (``conftest.py``).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from typing import Any

import pytest
import test_conversations as conversations
import test_exactly_once as exactly_once
import test_handoff_once as handoff_once
import test_ivr as ivr
import test_resume_and_auth as resume
import test_uncertain_outcome as uncertain
from hops_harness import DIALECTS

# A fixture of the module whose test is reused below.
connection_lost_after_commit = uncertain.connection_lost_after_commit


def again(test: Callable[..., Any]) -> Callable[..., Any]:
    """A copy of a test function: the same code, marks of its own."""
    copy = types.FunctionType(
        test.__code__, test.__globals__, test.__name__, test.__defaults__, test.__closure__
    )
    copy.__kwdefaults__ = test.__kwdefaults__
    copy.__annotations__ = dict(test.__annotations__)
    copy.__doc__ = test.__doc__
    copy.__dict__.update(test.__dict__)  # its own parametrize marks come along
    return copy


by_dialect = pytest.mark.parametrize("dialect", DIALECTS)

test_balance = by_dialect(again(conversations.test_balance))
test_gift_then_the_recipient_accepts_through_the_menu = by_dialect(
    again(conversations.test_gift_then_the_recipient_accepts_through_the_menu)
)
test_operator_handoff_with_breadcrumb_claim_and_close = by_dialect(
    again(conversations.test_operator_handoff_with_breadcrumb_claim_and_close)
)
test_the_same_gift_confirm_five_times_gives_one_gift = again(
    exactly_once.test_the_same_gift_confirm_five_times_gives_one_gift
)
test_two_different_hops_at_once_one_wins_and_the_session_goes_on = again(
    exactly_once.test_two_different_hops_at_once_one_wins_and_the_session_goes_on
)
test_concurrent_retries_of_a_redemption_redeem_once = again(
    exactly_once.test_concurrent_retries_of_a_redemption_redeem_once
)
test_resume_continues_at_the_same_screen = again(resume.test_resume_continues_at_the_same_screen)
test_resume_at_the_confirm_screen_then_confirm_gives_one_gift = again(
    resume.test_resume_at_the_confirm_screen_then_confirm_gives_one_gift
)
test_a_redial_after_a_lost_answer_resumes_with_the_same_key = again(
    uncertain.test_a_redial_after_a_lost_answer_resumes_with_the_same_key
)
test_silence_n_times_dials_the_operator = again(ivr.test_silence_n_times_dials_the_operator)
test_africastalking_operator_screen_answered_again_files_one_handoff = again(
    handoff_once.test_africastalking_operator_screen_answered_again_files_one_handoff
)
