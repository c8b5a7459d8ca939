"""The rate-limit audit: which 429s were wrong, for whom, and what rule the limiter applied.

settings.py   the [limits] section (tiers, accounts, how the replay counts), checked when read
replay.py     the usage each request met at admission under each counting rule (frames in and out)
classify.py   every 429 justified / ambiguous / wrong, over-limit admissions, the deciding limit
audit.py      the gateway frame -> RateLimits (counts, per limit, per account, flagged requests)
explain.py    what the limiter behaved as if it counted, per model and span
"""

from analyzer.limits.audit import Explanation, LimitSource, RateLimits, audit, audit_limits, classified
from analyzer.limits.classify import Verdict
from analyzer.limits.replay import Rule
from analyzer.limits.settings import Limit, LimitSettings, Tier

__all__ = [
    "Explanation",
    "Limit",
    "LimitSettings",
    "LimitSource",
    "RateLimits",
    "Rule",
    "Tier",
    "Verdict",
    "audit",
    "audit_limits",
    "classified",
]
