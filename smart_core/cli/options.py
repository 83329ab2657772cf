"""Reading what the commands are given: prices, a TOML config, comma-separated lists, and help
texts that wrap at the terminal rather than at the source's line breaks."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..task.pricing import Price
from .console import fail

__all__ = [
    "cascade_logprob_models",
    "help_paragraphs",
    "load_config",
    "numbers",
    "parse_prices",
    "run_cascades",
    "run_store",
    "split_list",
]

#: The stores a batch run may keep its state in (it must outlive the process to resume).
_RUN_STORES = ("sqlite", "redis", "rediss", "postgresql", "postgres")


def help_paragraphs(func):
    """Joins each docstring paragraph into one line: typer's help keeps the source's line breaks
    after the first paragraph, which cut sentences short in any terminal narrower than them."""
    text = inspect.cleandoc(func.__doc__ or "")
    func.__doc__ = "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))
    return func


def parse_prices(values: list[str] | None) -> dict[str, Price]:
    """``--price MODEL=INPUT,OUTPUT`` options (USD per 1M tokens) by model name."""
    prices = {}
    for value in values or []:
        try:
            model, rest = value.split("=", 1)
            inp, outp = (float(x) for x in rest.split(","))
        except ValueError:
            raise fail(
                f"--price {value!r}: expected MODEL=INPUT,OUTPUT in USD per 1M tokens, "
                "e.g. --price my-model=0.5,1.5"
            ) from None
        prices[model] = Price(inp, outp)
    return prices


def load_config(path: Path | None) -> dict:
    """The options in a ``--config`` TOML file: its ``[run]`` table, or its top level."""
    if path is None:
        return {}
    import tomllib

    if not path.is_file():
        raise fail(f"--config {path}: no such file")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise fail(f"--config {path}: not valid TOML ({exc})") from None
    return dict(data.get("run", data))


def run_cascades(value: Any) -> Any:
    """``--cascades`` / ``cascades`` in --config: ``"auto"``, ``"auto+learned"`` (those and a
    learned cascade per candidate, fit on the run's first items), a TOML file of
    ``[[cascades]]`` tables, or (from --config) those tables already read; None for none."""
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("auto", "auto+learned"):
            return value.strip().lower()
        import tomllib

        path = Path(value)
        if not path.is_file():
            raise fail(
                f"--cascades {value}: give auto, auto+learned or a TOML file with [[cascades]] "
                "tables "
                "(docs/cascades.md)"
            )
        try:
            with path.open("rb") as fh:
                tables = tomllib.load(fh).get("cascades")
        except tomllib.TOMLDecodeError as exc:
            raise fail(f"--cascades {value}: not valid TOML ({exc})") from None
        if not tables:
            raise fail(f"--cascades {value}: no [[cascades]] tables in the file")
        return tables
    if isinstance(value, list):
        return value
    raise fail(
        f"cascades in --config must be 'auto', a file name or [[run.cascades]] tables, got "
        f"{value!r}"
    )


def cascade_logprob_models(spec: Any) -> frozenset[str]:
    """The models of ``spec``'s cascades (a BatchRun's) to ask for token logprobs; the
    cascades are checked against its models here, so a bad one fails before any call."""
    if not spec.cascades:
        return frozenset()
    from ..errors import ConfigError
    from ..task.cascades import logprob_models, parse_cascades
    from ..task.comparators import parse_comparator

    try:
        parsed = parse_cascades(
            spec.cascades,
            reference=spec.reference,
            candidates=spec.candidates,
            comparator=parse_comparator(spec.comparator),
        )
    except ConfigError as exc:
        raise fail(f"--cascades: {exc}") from None
    return logprob_models(parsed)


def split_list(value: str | list[str] | None) -> list[str]:
    """A comma-separated option (or a TOML list) as its non-empty, stripped entries."""
    if value is None:
        return []
    if isinstance(value, str):
        value = value.split(",")
    return [v.strip() for v in value if v and v.strip()]


def numbers(value: str, option: str, kind: type[int] | type[float] = int) -> list:
    """A comma-separated option of numbers (``kind``: whole or decimal), or an error naming
    ``option`` and an example."""
    try:
        return [kind(v) for v in split_list(value)]
    except ValueError:
        example = "1,8,64" if kind is int else "0.05,0.1"
        what = "whole numbers" if kind is int else "numbers"
        raise fail(f"{option} takes {what} separated by commas, like {example}") from None


def run_store(store: str | None, state: str | Path | None) -> tuple[str | None, Path | None]:
    """``smart run --store`` and ``--state`` as ``(shared store URL, SQLite state file)``.

    ``--store sqlite:///path.db`` is the same as ``--state path.db`` (one run per file); a Redis
    or PostgreSQL URL keeps the run on that server. Errors never show a URL's password.
    """
    from ..task.redaction import redact_url

    if not store:
        return None, Path(state) if state else None
    scheme, sep, rest = store.partition("://")
    if not sep or scheme.lower() not in _RUN_STORES:
        raise fail(
            f"--store {redact_url(store)!r}: a run needs a store that outlives it; use "
            "sqlite:///path.db, redis://[:password@]host:6379/0 or "
            "postgresql://user[:password]@host/dbname"
        )
    if scheme.lower() == "sqlite":
        if state:
            raise fail(f"--store {store} and --state {state} both name the SQLite file; keep one")
        if not rest.startswith("/") or len(rest) < 2:
            raise fail(
                f"--store {store!r}: use three slashes and a path, e.g. sqlite:///run.db "
                "(relative) or sqlite:////var/lib/run.db (absolute)"
            )
        return None, Path(rest[1:])
    if state:
        raise fail(
            f"--state {state} names a SQLite file, but --store {redact_url(store)} keeps the run "
            "on a server; keep one"
        )
    return store, None
