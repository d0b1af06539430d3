"""Error class → action: the one table that decides what a failed attempt means.

The relay classifies a failure once (errors.py) and asks ``decide`` what to do. The table is
looked up along the exception's MRO, so the most specific class wins (a ``ContextLengthExceeded``
is an ``UpstreamRequestError`` unless it gets a row of its own).

===========================  =====  ==============  ===========================
error                        retry  cool channel    cool upstream key
===========================  =====  ==============  ===========================
UpstreamRateLimited (429)    yes    no              Retry-After, else key period
UpstreamAuthError (401/403)  yes    no              key period, at least 600 s
UpstreamRequestError (4xx)   no     no              no   (the client's own request)
UpstreamUnavailable (5xx)    yes    yes             no
UpstreamTimeout              yes    yes             no
UpstreamConnectError         yes    yes             no
UpstreamProtocolError        yes    yes             no   (bad JSON, empty, truncated)
===========================  =====  ==============  ===========================

Once a stream is committed nothing is retried, whatever the row says (relay.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from unigate.errors import (
    UpstreamAuthError,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamRateLimited,
    UpstreamRequestError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

KeyCooling = Literal["none", "rate", "auth"]


@dataclass(frozen=True, slots=True)
class Action:
    retry: bool
    cool_channel: bool
    cool_key: KeyCooling


_TABLE: dict[type[UpstreamError], Action] = {
    UpstreamRateLimited: Action(retry=True, cool_channel=False, cool_key="rate"),
    UpstreamAuthError: Action(retry=True, cool_channel=False, cool_key="auth"),
    UpstreamRequestError: Action(retry=False, cool_channel=False, cool_key="none"),
    UpstreamUnavailable: Action(retry=True, cool_channel=True, cool_key="none"),
    UpstreamTimeout: Action(retry=True, cool_channel=True, cool_key="none"),
    UpstreamConnectError: Action(retry=True, cool_channel=True, cool_key="none"),
    UpstreamProtocolError: Action(retry=True, cool_channel=True, cool_key="none"),
}
_DEFAULT = Action(retry=True, cool_channel=True, cool_key="none")


def decide(error: UpstreamError) -> Action:
    """The action for ``error``: the row of its most specific class in the table."""
    for cls in type(error).__mro__:
        action = _TABLE.get(cls)
        if action is not None:
            return action
    return _DEFAULT
