"""Client-side limits before routing: the key's ``credits``, its ``rate_limit`` and the global
``rate_limit``.

Windows are kept per (client key, requested model), as uni-api does, and one ``global`` scope
for every request. A request over a limit gets 429 with ``Retry-After`` and OpenAI's
``x-ratelimit-*`` headers; admitted requests carry the same headers for the binding window.
Token windows (``tpm``/``tpd``) are charged up front with the prompt's local estimate and
corrected once the real usage is known (``correct_tokens``); ``tpr`` (tokens per request)
refuses an oversized prompt with 413.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from unigate import tokens
from unigate.config.compile import ClientKey, Runtime
from unigate.config.values import RateLimit
from unigate.credits import Credits
from unigate.errors import PayloadTooLarge, RateLimited
from unigate.limits import Limiter, limits_for


@dataclass(frozen=True, slots=True)
class TokenCharge:
    """A token window charged with an estimate, to be corrected by the real usage."""

    scope: str
    limits: tuple[RateLimit, ...]
    charged: int


async def admit(
    limiter: Limiter,
    runtime: Runtime,
    key: ClientKey,
    model: str,
    body: Mapping[str, Any],
    credits: Credits | None = None,
) -> tuple[dict[str, str], list[TokenCharge]]:
    """Check the key's credits (``InsufficientCredits``, 402), then charge the request to its
    windows or raise ``RateLimited`` / ``PayloadTooLarge``. Returns the rate-limit headers for the
    response and the token charges to correct."""
    if credits is not None and key.credits is not None:
        await credits.check(key)
    plans = [
        (f"key:{key.id}:{model}", limits_for(key.rate_limits, model)),
        ("global", limits_for(runtime.rate_limits, model)),
    ]
    plans = [(scope, limits) for scope, limits in plans if limits]
    if not plans:
        return {}, []
    cost = 1
    if any(limit.kind != "requests" for _, limits in plans for limit in limits):
        cost = max(1, await asyncio.to_thread(tokens.estimate_prompt, body))
    headers: dict[str, str] = {}
    charges: list[TokenCharge] = []
    for scope, limits in plans:
        decision = await limiter.acquire(scope, limits, cost)
        if not decision.allowed:
            if decision.retry_after is None:
                raise PayloadTooLarge(f"The prompt (~{cost} tokens) is larger than a token limit of this key allows.")
            which = "this key" if scope != "global" else "the gateway"
            raise RateLimited(
                f"Rate limit of {which} reached for '{model}'; retry after {decision.retry_after:.1f} s.",
                retry_after=decision.retry_after,
                code="rate_limit_exceeded",
                extra_headers=decision.headers(),
            )
        headers.update(decision.headers())
        windows = tuple(limit for limit in limits if limit.kind == "tokens")
        if windows:
            charges.append(TokenCharge(scope, windows, cost))
    return headers, charges


async def correct_tokens(limiter: Limiter, charges: list[TokenCharge], used: int) -> None:
    """Replace each estimate by the tokens the request really used (prompt + completion)."""
    for charge in charges:
        delta = used - charge.charged
        if delta:
            await limiter.adjust(charge.scope, charge.limits, delta)
