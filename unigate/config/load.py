"""Read ``api.yaml`` from a file, a ``file://`` URL or ``http(s)://`` (``CONFIG_URL``), expand
``${VAR}`` references, validate with :mod:`unigate.config.schema`, and report every problem with
its file, line and column.

Contract:

* YAML is parsed by ruamel in round-trip mode (YAML 1.2: ``no``/``on`` stay strings); duplicate
  keys, syntax errors and an empty file are :class:`Problem` s like any other.
* ``${VAR}`` and ``${VAR:-default}`` are expanded in every string *value* (not in keys, and not
  under ``video_providers``, whose templates belong to uni-api's video adapters) from ``env``.
  ``:-`` uses the default when the variable is unset or empty; ``$${`` writes a literal ``${``;
  defaults cannot nest or contain ``}``. An unset variable without a default is a problem at that
  scalar. A plain (unquoted) scalar that is exactly one reference becomes
  :class:`~unigate.config.schema.EnvText`, so ``cooldown_period: ${COOLDOWN:-300}`` is a number
  while ``api: ${KEY}`` stays the string it was.
* No message contains a secret: a wrong value under a secret-looking key (``api``, ``*key*``,
  ``aws_*``, ``*secret*``, ``*token*``, ``*password*``, ``headers``, ``proxy``) is described by
  its type only, key-shaped map keys are masked, and known secret values are masked everywhere.
* :func:`load_text` raises :class:`ConfigError` when there is at least one error; warnings (keys
  accepted but not implemented yet, rules naming unknown channels or models) ride on
  :class:`LoadedConfig`.
"""

from __future__ import annotations

import difflib
import os
import re
import types
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, Union, cast, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from ruamel.yaml import YAML
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from unigate.config.schema import ApiYaml, PathPart, format_path, iter_unsupported
from unigate.config.values import EnvText, rule_provider

Pos = tuple[int, int]
"""0-based (line, column), as ruamel reports them."""
DataPath = tuple[PathPart, ...]

FETCH_TIMEOUT = 10.0
MAX_REMOTE_BYTES = 16 * 2**20


@dataclass(frozen=True)
class Problem:
    """One finding in a config file. ``line``/``column`` are 1-based; 0 means "the whole file"."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}" if self.line > 0 else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration cannot be used; ``problems`` says where and why (one per line in str)."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


@dataclass(frozen=True)
class LoadedConfig:
    """A validated config, where it came from (credentials stripped), and start-up warnings."""

    config: ApiYaml
    source: str
    warnings: tuple[str, ...]


# ---------------------------------------------------------------------------- public entry points


def load_text(text: str, source: str = "<string>", env: Mapping[str, str] = os.environ) -> LoadedConfig:
    """Parse, expand, validate and check ``text``; raise :class:`ConfigError` listing every error."""
    return _Document(source, env).load(text)


def load_path(path: str | Path, env: Mapping[str, str] = os.environ) -> LoadedConfig:
    """Load a config file (UTF-8, optional BOM)."""
    name = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise ConfigError([Problem(name, 0, 0, "", "file not found")]) from None
    except OSError as exc:
        raise ConfigError([Problem(name, 0, 0, "", f"cannot read the file: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line, column = before.count(b"\n") + 1, exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError([Problem(name, line, column, "", "the file is not valid UTF-8")]) from None
    return load_text(text, name, env)


def resolve_source(config_opt: str | None, env: Mapping[str, str] = os.environ) -> str:
    """Where to read the config: ``--config`` if given, else ``CONFIG_URL`` if set, else ``./api.yaml``."""
    if config_opt:
        return config_opt
    url = env.get("CONFIG_URL", "").strip()
    return url or "./api.yaml"


def fetch_url(url: str) -> str:
    """GET ``url`` with urllib (timeout :data:`FETCH_TIMEOUT` s, at most :data:`MAX_REMOTE_BYTES`)."""
    request = urllib.request.Request(url, headers={"User-Agent": "unigate", "Accept": "application/yaml, */*"})
    with urllib.request.urlopen(request, timeout=FETCH_TIMEOUT) as response:
        body: bytes = response.read(MAX_REMOTE_BYTES + 1)
        charset = response.headers.get_content_charset() or "utf-8-sig"
    if len(body) > MAX_REMOTE_BYTES:
        raise ValueError(f"the response is larger than {MAX_REMOTE_BYTES} bytes")
    return body.decode(charset)


def load_source(
    source: str, env: Mapping[str, str] = os.environ, fetch: Callable[[str], str] = fetch_url
) -> LoadedConfig:
    """Load from a plain path, a ``file://`` URL, or an ``http(s)://`` URL fetched with ``fetch``.

    Problems name the source without credentials, query string or fragment.
    """
    scheme = urllib.parse.urlsplit(source).scheme.lower() if "://" in source or source.startswith("file:") else ""
    if scheme in ("http", "https"):
        shown = display_source(source)
        try:
            text = fetch(source)
        except urllib.error.HTTPError as exc:
            raise ConfigError([Problem(shown, 0, 0, "", f"cannot fetch: HTTP {exc.code} {exc.reason}")]) from None
        except urllib.error.URLError as exc:
            raise ConfigError([Problem(shown, 0, 0, "", f"cannot fetch: {exc.reason}")]) from None
        except (OSError, ValueError) as exc:
            raise ConfigError([Problem(shown, 0, 0, "", f"cannot fetch: {exc}")]) from None
        return load_text(text, shown, env)
    if scheme == "file":
        parts = urllib.parse.urlsplit(source)
        if parts.netloc not in ("", "localhost"):
            raise ConfigError([Problem(source, 0, 0, "", "a file:// URL must name a local file")])
        return load_path(urllib.request.url2pathname(parts.path), env)
    if scheme:
        raise ConfigError([Problem(display_source(source), 0, 0, "", "unsupported URL scheme")])
    return load_path(source, env)


def display_source(url: str) -> str:
    """``url`` without user:password, query and fragment (they may carry tokens)."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, "", ""))


# ---------------------------------------------------------------------------- secrets

# fmt: off
_SECRET_LEAVES = frozenset(("api", "private_key", "aws_access_key", "aws_secret_key", "aws_session_token",
                            "access_key", "secret_key"))
# fmt: on
_KEY_SHAPED = re.compile(r"(?:sk|pk|rk|ak|xai|gsk)[-_][A-Za-z0-9_-]{8,}|AIza[\w-]{10,}|AKIA[0-9A-Z]{12,}")


def _yaml_word(value: Any) -> str:
    """A scalar as YAML spells it (``null``, ``true``), for map keys and messages."""
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return str(value)


def _secret_path(path: Sequence[PathPart]) -> bool:
    """True when a value at ``path`` may be a secret, judged by the key holding it (or any
    ``headers`` above it): describe such a value by its type only."""
    names = [part.lower() for part in path if isinstance(part, str)]
    if not names:
        return False
    leaf = names[-1]
    if leaf in ("api", "proxy") or leaf.startswith("aws_") or "headers" in names:
        return True
    return any(word in leaf for word in ("key", "secret", "token", "password"))


def _describe(value: Any, secret: bool) -> str:
    kinds = {type(None): "null", bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             dict: "a map", list: "a list", datetime: "a timestamp", date: "a date"}  # fmt: skip
    kind = next((k for t, k in kinds.items() if isinstance(value, t)), type(value).__name__)
    if secret or isinstance(value, dict | list) or (isinstance(value, str) and _KEY_SHAPED.match(value)):
        return f"got {kind}"
    text = repr(value) if isinstance(value, str) else _yaml_word(value)
    return f"got {text if len(text) <= 60 else text[:57] + '...'}"


# ---------------------------------------------------------------------------- the document

_REFERENCE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{")


class _Document:
    """One load: YAML → plain data with positions → ApiYaml → problems and warnings."""

    def __init__(self, source: str, env: Mapping[str, str]) -> None:
        self.source = source
        self.env = env
        self.positions: dict[DataPath, tuple[Pos, Pos]] = {(): ((0, 0), (0, 0))}
        self.secrets: set[str] = set()
        self.unexpanded: set[DataPath] = set()
        self.errors: list[Problem] = []
        self.warnings: list[Problem] = []
        self.data: Any = None

    # -- reporting

    def problem(self, path: DataPath, message: str, *, at_key: bool = False, shown: DataPath | None = None) -> Problem:
        line, column = self._pos(path, at_key)
        text_path = self._mask(format_path(shown if shown is not None else path), path_mode=True)
        return Problem(self.source, line + 1, column + 1, text_path, self._mask(message))

    def add(self, path: DataPath, message: str, *, at_key: bool = False, warn: bool = False) -> None:
        """Record an error (or a warning) at ``path``."""
        (self.warnings if warn else self.errors).append(self.problem(path, message, at_key=at_key))

    def _pos(self, path: DataPath, at_key: bool) -> Pos:
        for end in range(len(path), -1, -1):
            found = self.positions.get(path[:end])
            if found is not None:
                return found[0] if at_key and end == len(path) else found[1]
        return (0, 0)

    def _mask(self, text: str, path_mode: bool = False) -> str:
        for secret in sorted(self.secrets, key=len, reverse=True):
            if len(secret) >= 4:
                text = text.replace(secret, "***")
        if path_mode:
            text = _KEY_SHAPED.sub("***", text)
        return text

    # -- loading

    def load(self, text: str) -> LoadedConfig:
        yaml = YAML(typ="rt")
        yaml.preserve_quotes = True
        try:
            node = yaml.load(text)
        except MarkedYAMLError as exc:
            raise ConfigError([self._yaml_problem(exc)]) from None
        except YAMLError as exc:
            raise ConfigError([Problem(self.source, 1, 1, "", f"invalid YAML ({type(exc).__name__})")]) from None
        if node is None:
            empty = "the file is empty; expected a mapping with 'providers' and 'api_keys'"
            raise ConfigError([Problem(self.source, 1, 1, "", empty)])
        self.data = self._convert(node, (), (0, 0), True)
        if not isinstance(self.data, dict):
            raise ConfigError([self.problem((), "the top level must be a mapping with 'providers' and 'api_keys'")])
        self._check_duplicates()
        cfg: ApiYaml | None = None
        try:
            cfg = ApiYaml.model_validate(self.data)
        except ValidationError as exc:
            for err in exc.errors(include_url=False):
                problem = self._from_pydantic(err)
                if problem is not None:
                    self.errors.append(problem)
        if cfg is not None and not self.unexpanded:
            self._check(cfg)
        if self.errors:
            raise ConfigError(sorted(self.errors, key=lambda p: (p.line, p.column)))
        assert cfg is not None
        warnings = sorted(self.warnings, key=lambda p: (p.line, p.column))
        return LoadedConfig(cfg, self.source, tuple(str(w) for w in warnings))

    def _yaml_problem(self, exc: MarkedYAMLError) -> Problem:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        problem = str(exc.problem or "invalid YAML")
        if isinstance(exc, DuplicateKeyError):
            found = re.match(r'found duplicate key "(.*?)" with value', problem)
            key = found.group(1) if found else ""
            shown = f" {key!r}" if key and len(key) <= 64 and not _KEY_SHAPED.match(key) else ""
            message = f"duplicate key{shown} in this mapping"
        else:
            message = f"invalid YAML: {problem}" + (f" ({exc.context})" if exc.context else "")
        return Problem(self.source, line, column, "", message)

    def _convert(self, node: Any, path: DataPath, pos: Pos, expand: bool) -> Any:
        """Plain Python from ruamel nodes, recording (key, value) positions of every path."""
        if isinstance(node, Mapping):
            out: dict[str, Any] = {}
            for key, value in node.items():
                name = key if isinstance(key, str) else _yaml_word(key)
                key_pos = _lc(node, "key", key, pos)
                value_pos = key_pos if value is None else _lc(node, "value", key, key_pos)
                child = (*path, name)
                self.positions[child] = (key_pos, value_pos)
                out[name] = self._convert(value, child, value_pos, expand and child != ("video_providers",))
            return out
        if isinstance(node, list):
            items: list[Any] = []
            for i, value in enumerate(node):
                item_pos = _lc(node, "item", i, pos)
                self.positions[(*path, i)] = (item_pos, item_pos)
                items.append(self._convert(value, (*path, i), item_pos, expand))
            return items
        if isinstance(node, str):
            text = self._expand(node, path) if expand and "${" in node else str(node)
            if _secret_leaf(path):
                self.secrets.add(str(text))
            return text
        if isinstance(node, bool) or node is None:
            return node
        if isinstance(node, int):
            return int(node)
        if isinstance(node, float):
            return float(node)
        if isinstance(node, datetime):
            return datetime(*node.timetuple()[:6], node.microsecond, tzinfo=node.tzinfo)
        if isinstance(node, date):
            return date(node.year, node.month, node.day)
        return node

    def _expand(self, node: str, path: DataPath) -> str:
        """``node`` with ``${VAR}`` references replaced; problems are recorded at ``path``."""
        text = str(node)
        whole = type(node) is str and text != "$${" and _REFERENCE.fullmatch(text) is not None

        def substitute(match: re.Match[str]) -> str:
            token, name, default = match.group(0), match.group(1), match.group(2)
            if token == "$${":
                return "${"
            value = self.env.get(name) if name else None
            if name and default is not None and not value:
                return default
            if value is None:
                hint = f"environment variable {name} is not set (write ${{{name}:-default}} for a default)"
                self.add(path, hint if name else "malformed ${...} reference (write $${ for a literal ${)")
                self.unexpanded.add(path)
                return token
            return value

        result = _REFERENCE.sub(substitute, text)
        return EnvText(result) if whole else result

    # -- pydantic errors

    def _from_pydantic(self, err: ErrorDetails) -> Problem | None:
        """The problem for one pydantic error; None when it follows from an unexpanded ``${VAR}``."""
        loc = tuple(err["loc"])
        path = self._resolve(loc)
        if any(path[: len(bad)] == bad for bad in self.unexpanded):
            return None
        kind = err["type"]
        if kind == "missing":
            return self.problem(path, f"required key {loc[-1]!r} is missing", shown=(*path, loc[-1]))
        if kind == "extra_forbidden":
            return self.problem(path, self._unknown_key(path), at_key=True)
        message = err["msg"].removeprefix("Value error, ")
        if kind not in ("value_error", "assertion_error"):
            message += f" ({_describe(err.get('input'), _secret_path(path))})"
        return self.problem(path, message, at_key="[key]" in loc)

    def _resolve(self, loc: tuple[PathPart, ...]) -> DataPath:
        """The data path behind a pydantic ``loc``: skip union tags and keys absent from the data."""
        node, path = self.data, cast(DataPath, ())
        for part in loc:
            in_map = isinstance(node, dict) and isinstance(part, str) and part in node
            if in_map or (isinstance(node, list) and type(part) is int and 0 <= part < len(node)):
                node, path = node[part], (*path, part)
        return path

    def _unknown_key(self, path: DataPath) -> str:
        key, parent = str(path[-1]), path[:-1]
        shown = "unknown key" if _KEY_SHAPED.match(key) else f"unknown key {key!r}"
        fields = [f for model in models_at(parent) for f in model.model_fields]
        folded = [f for f in fields if f.lower() == key.lower()]
        close = folded or difflib.get_close_matches(key, fields, n=1, cutoff=0.6)
        if close:
            return f"{shown}; did you mean {close[0]!r}?"
        for model in models_at(parent):
            for name in model.model_fields:
                if any(key in sub.model_fields for sub in models_at((*parent, name))):
                    return f"{shown}; it belongs under {name!r}"
        if parent and isinstance(parent[-1], str) and any(key in m.model_fields for m in models_at(parent[:-1])):
            return f"{shown}; it belongs one level up, next to {parent[-1]!r}"
        return f"{shown}; expected one of: {', '.join(fields)}" if fields else shown

    # -- checks pydantic cannot do

    def _check_duplicates(self) -> None:
        """Duplicate provider names and client keys, on the raw data (so they are reported even
        when other keys fail validation). A client key is never echoed."""
        for section, field, what in (
            ("providers", "provider", "provider name"),
            ("api_keys", "api", "client key"),
        ):
            entries = self.data.get(section)
            seen: dict[str, int] = {}
            for i, entry in enumerate(entries if isinstance(entries, list) else []):
                value = entry.get(field) if isinstance(entry, dict) else None
                skip = (section, i, field) in self.unexpanded
                if skip or value is None or isinstance(value, bool | dict | list):
                    continue
                first = seen.setdefault(str(value), i)
                if first != i:
                    shown = f" {str(value)!r}" if section == "providers" else ""
                    self.add((section, i, field), f"duplicate {what}{shown} (same as {section}[{first}].{field})")

    def _check(self, cfg: ApiYaml) -> None:
        if not cfg.api_keys:
            self.add((), "no api_keys: every client request will be refused", warn=True)
        self._check_rules(cfg, {key.api: i for i, key in enumerate(cfg.api_keys)})
        for path, value in iter_unsupported(cfg):
            what = f"value {value!r}" if value else "key"
            self.add(path, f"{what} accepted but not supported yet", at_key=value is None, warn=True)

    def _check_rules(self, cfg: ApiYaml, keys: Mapping[str, int]) -> None:
        offered: dict[str, set[str] | None] = {p.provider: _aliases(p.model) for p in cfg.providers}
        everything = set().union(*(a for a in offered.values() if a is not None))
        all_listed = all(a is not None for a in offered.values())
        for i, key in enumerate(cfg.api_keys):
            for j, entry in enumerate(key.model):
                rule = entry if isinstance(entry, str) else next(iter(entry))
                path: DataPath = (
                    ("api_keys", i, "model", j) if isinstance(entry, str) else ("api_keys", i, "model", j, rule)
                )
                for message, is_error in _rule_findings(rule, key.api, offered, everything, all_listed, keys):
                    self.add(path, message, at_key=True, warn=not is_error)


def _rule_findings(
    rule: str,
    own_key: str,
    offered: Mapping[str, set[str] | None],
    everything: set[str],
    all_listed: bool,
    keys: Mapping[str, int],
) -> Iterator[tuple[str, bool]]:
    """(message, is_error) for one ``api_keys[].model`` rule (uni-api-compat.md §2.6)."""
    channel = rule_provider(rule)
    if rule == "all" or rule.startswith("<") or rule in everything:
        return
    if channel is None:
        if all_listed and "*" not in rule:
            hint = _did_you_mean(rule, everything)
            yield f"no provider offers model {rule!r}; the rule matches nothing{hint}", False
        return
    model = rule.partition("/")[2]
    if channel in offered:
        aliases = offered[channel]
        if aliases is not None and model != "*" and model not in aliases:
            yield f"provider {channel!r} offers no model {model!r}{_did_you_mean(model, aliases)}", False
    elif channel == own_key:
        yield "the rule uses this same client key as its channel (it would call itself)", True
    elif channel in keys:
        yield "a client key as channel (uni-api's 'key as channel') is accepted but not supported yet", False
    else:
        if _KEY_SHAPED.match(channel) or channel.startswith("sk-"):
            yield "the rule names a client key that is not configured in api_keys", False
        else:
            hint = _did_you_mean(channel, set(offered))
            yield f"no provider is named {channel!r}; the rule matches nothing{hint}", False


def _did_you_mean(word: str, choices: set[str]) -> str:
    close = difflib.get_close_matches(word, sorted(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _aliases(model: list[str | dict[str, str]] | None) -> set[str] | None:
    if model is None:
        return None
    return {e if isinstance(e, str) else next(iter(e.values())) for e in model}


def _secret_leaf(path: DataPath) -> bool:
    names = [p for p in path if isinstance(p, str)]
    if not names:
        return False
    return names[-1] in _SECRET_LEAVES or "headers" in names


def _lc(node: Any, kind: str, key: Any, fallback: Pos) -> Pos:
    """Position of a mapping key/value or sequence item; merged (``<<``) keys have none."""
    try:
        line, column = getattr(node.lc, kind)(key)
        return (int(line), int(column))
    except (AttributeError, KeyError, IndexError, TypeError):
        return fallback


def models_at(path: Sequence[PathPart], root: type[BaseModel] = ApiYaml) -> list[type[BaseModel]]:
    """The schema models that validate the mapping at ``path`` (for "did you mean")."""
    current: list[Any] = [root]
    for part in path:
        following: list[Any] = []
        for tp in _flatten(current):
            if isinstance(tp, type) and issubclass(tp, BaseModel):
                if isinstance(part, str) and part in tp.model_fields:
                    following.append(tp.model_fields[part].annotation)
            elif get_origin(tp) is list and isinstance(part, int):
                following.extend(get_args(tp)[:1])
            elif get_origin(tp) is dict and isinstance(part, str):
                following.extend(get_args(tp)[1:2])
        current = following
    return [tp for tp in _flatten(current) if isinstance(tp, type) and issubclass(tp, BaseModel)]


def _flatten(candidates: list[Any]) -> list[Any]:
    out: list[Any] = []
    for tp in candidates:
        origin = get_origin(tp)
        if origin is Annotated:
            out.extend(_flatten([get_args(tp)[0]]))
        elif origin is Union or origin is types.UnionType:
            out.extend(_flatten(list(get_args(tp))))
        else:
            out.append(tp)
    return out
