"""(client key, requested model) → the channels that may serve it, in the key's priority order.

A pure lookup in the compiled ``Runtime`` with uni-api's matching semantics
(uni-api-compat.md §2.6): the key's rules are walked in order; each contributes the channels it
admits for the requested alias, in ``providers`` order. Unlike uni-api, a channel admitted by
two rules is tried once (the first time), not twice.

A request model ending in ``*`` (``gpt-4*``) matches every alias the key may use with that
prefix, as uni-api allows; each match is a candidate under its real name.
"""

from __future__ import annotations

from dataclasses import dataclass

from unigate.config.compile import Channel, ClientKey, Rule, Runtime
from unigate.errors import NotFound, PermissionDenied


@dataclass(frozen=True, slots=True)
class Candidate:
    """One channel that may serve a request: the alias the client used, the upstream name,
    and the weight the key's rule gave it (``None`` when unweighted)."""

    channel: Channel
    alias: str
    upstream_model: str
    weight: int | None = None


def _rule_admits(rule: Rule, channel: Channel, alias: str) -> bool:
    kind = rule.kind
    if kind == "all":
        return True
    if kind == "provider":
        return channel.name == rule.provider
    if kind == "provider_model":
        return channel.name == rule.provider and alias == rule.model
    return alias == rule.model  # name, literal


def candidates_for(runtime: Runtime, key: ClientKey, model: str) -> list[Candidate]:
    """Every channel the key may use for ``model``, in priority order.

    Raises ``NotFound`` (404) when no channel offers the model at all, ``PermissionDenied``
    (403) when some channel does but none of the key's rules admits it.
    """
    if model.endswith("*") and len(model) > 1:
        prefix = model[:-1]
        aliases = [a for a in allowed_models(runtime, key) if a.startswith(prefix)]
        if not aliases:
            raise NotFound(f"The model '{model}' matches no model this key may use.", code="model_not_found")
        out: list[Candidate] = []
        for alias in aliases:
            out.extend(_for_alias(runtime, key, alias))
        return out
    offering = runtime.channels_by_alias.get(model)
    if not offering:
        raise NotFound(f"The model '{model}' does not exist.", code="model_not_found", param="model")
    found = _for_alias(runtime, key, model)
    if not found:
        raise PermissionDenied(
            f"This API key may not use the model '{model}'.", code="model_not_allowed", param="model"
        )
    return found


def _for_alias(runtime: Runtime, key: ClientKey, alias: str) -> list[Candidate]:
    offering = runtime.channels_by_alias.get(alias, ())
    seen: set[str] = set()
    out: list[Candidate] = []
    for rule in key.rules:
        for channel in offering:
            if channel.name not in seen and _rule_admits(rule, channel, alias):
                seen.add(channel.name)
                out.append(Candidate(channel, alias, channel.models[alias], rule.weight))
    return out


def allowed_models(runtime: Runtime, key: ClientKey) -> list[str]:
    """The aliases this key may request, in rule order without duplicates (``/v1/models``).

    Only models some channel actually offers are listed; ``<a/b>`` literals are listed too
    (uni-api's seed omitted them).
    """
    names: dict[str, None] = {}
    for rule in key.rules:
        for channel in runtime.channels:
            for alias in channel.models:
                if alias not in names and _rule_admits(rule, channel, alias):
                    names[alias] = None
    return list(names)
