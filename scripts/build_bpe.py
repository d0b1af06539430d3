"""Build tiktoken's BPE rank files for ``unigate/data/`` from the npm package js-tiktoken.

tiktoken downloads ``<name>.tiktoken`` from openaipublic.blob.core.windows.net on first use, which
cannot work offline, so unigate ships the files. js-tiktoken carries the same ranks in a compact
form (``dist/ranks/<name>.js``: ``export default {"pat_str": …, "special_tokens": …,
"bpe_ranks": "…"}``), where ``bpe_ranks`` is newline-separated runs ``<label> <first rank>
<base64 token> <base64 token> …`` whose tokens take consecutive ranks from ``<first rank>``.

This script expands that into tiktoken's own format — one ``<base64 token> <rank>`` line per
token, in rank order — and checks the result byte for byte against the SHA-256 that tiktoken
itself expects for the file OpenAI publishes (``tiktoken_ext.openai_public``), so a shipped file
is exactly OpenAI's. Run it from the project root with the project's virtualenv::

    uv run python scripts/build_bpe.py                     # npm pack js-tiktoken into a temp dir
    uv run python scripts/build_bpe.py --source ./package  # an unpacked js-tiktoken (or its .tgz)

Only the npm client touches the network (``npm pack``); nothing here downloads from OpenAI.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "unigate" / "data"
NPM_PACKAGE = "js-tiktoken@1.0.21"
ENCODINGS = ("o200k_base", "cl100k_base")


def expand(js_module: str) -> tuple[bytes, dict[str, int]]:
    """The ``.tiktoken`` file contents and special tokens encoded in a js-tiktoken ranks module."""
    text = js_module.strip()
    prefix = "export default "
    if not text.startswith(prefix):
        raise ValueError("not a js-tiktoken ranks module (expected 'export default {…}')")
    spec = json.loads(text[len(prefix) :].rstrip(";"))
    ranks: dict[str, int] = {}
    for run in filter(None, spec["bpe_ranks"].split("\n")):
        _label, first, *tokens = run.split(" ")
        for offset, token in enumerate(tokens):
            base64.b64decode(token, validate=True)  # reject anything that is not base64
            if token in ranks:
                raise ValueError(f"token {token!r} appears twice")
            ranks[token] = int(first) + offset
    if len(set(ranks.values())) != len(ranks):
        raise ValueError("two tokens share a rank")
    lines = (f"{token} {rank}\n" for token, rank in sorted(ranks.items(), key=lambda item: item[1]))
    return "".join(lines).encode("ascii"), dict(spec["special_tokens"])


def expected_sha256(name: str) -> str | None:
    """The SHA-256 tiktoken expects for ``<name>.tiktoken`` (read from tiktoken_ext, offline)."""
    sys.path.insert(0, str(ROOT))
    from unigate.tokens import published_sha256

    return published_sha256(name)


def fetch(workdir: Path) -> Path:
    subprocess.run(["npm", "pack", NPM_PACKAGE, "--silent"], cwd=workdir, check=True, stdout=subprocess.DEVNULL)
    (tarball,) = workdir.glob("js-tiktoken-*.tgz")
    return tarball


def unpack(source: Path, workdir: Path) -> Path:
    """The ``package`` directory of js-tiktoken, from a directory or an npm tarball."""
    if source.is_dir():
        return source
    with tarfile.open(source) as archive:
        archive.extractall(workdir, filter="data")
    return workdir / "package"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, help="unpacked js-tiktoken directory or its .tgz (default: npm pack)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output directory (default: {OUT})")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        package = unpack(args.source or fetch(workdir), workdir)
        args.out.mkdir(parents=True, exist_ok=True)
        for name in ENCODINGS:
            data, special = expand((package / "dist" / "ranks" / f"{name}.js").read_text(encoding="utf-8"))
            digest = hashlib.sha256(data).hexdigest()
            want = expected_sha256(name)
            if want is not None and digest != want:
                print(f"{name}: sha256 {digest} differs from tiktoken's {want}; not written", file=sys.stderr)
                return 1
            target = args.out / f"{name}.tiktoken"
            target.write_bytes(data)
            shown = target.relative_to(ROOT) if target.is_relative_to(ROOT) else target
            tokens = data.count(b"\n")
            print(
                f"{shown}: {tokens} tokens, {len(data)} bytes, sha256 {digest} "
                f"(checked against tiktoken: {want is not None}); special tokens {special}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
