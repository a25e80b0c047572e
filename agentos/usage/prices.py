"""What a call cost, from the best source there is, and "unknown" when there is none.

    1. the provider's own figure, when the call reports one (OpenRouter's `usage.cost`, a CLI
       that prints its cost): that is what was billed
    2. the user's price file (--prices FILE), which overrides or adds models
    3. the genai-prices database (PyPI `genai-prices`, maintained by Pydantic): prices by
       provider and model, with their cache, tier and date rules

A model none of them knows has its tokens recorded and its cost unknown; agentos never guesses a
price. The database ships inside the package and is read from there: agentos never starts its
remote updater (`genai_prices.UpdatePrices`), so pricing works offline and a run's costs do not
change under it.

The price file is TOML, USD per million tokens; a name with `*` matches like a shell pattern,
an exact name wins over a pattern, and names are matched case-insensitively:

    [models."gpt-4o-mini"]
    input = 0.15
    output = 0.60
    cached_input = 0.075     # optional; cached tokens cost `input` when it is not given

    [models."llama3*"]       # a local model: free
    input = 0
    output = 0

genai-prices (and its pydantic) take about 0.2 s to import, so the import waits for the first call
that needs the database; the parent loads it before forking workers when the run's agents name a
model, and forked workers inherit it.
"""

from __future__ import annotations

import fnmatch
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, NamedTuple

from agentos.errors import ConfigError
from agentos.usage.record import Call

PER_TOKENS = 1_000_000


class ModelRef(NamedTuple):
    """A model a run's agent will call, as known before the run, and where (for its price)."""

    model: str
    provider: str | None = None


_FIELDS = ("input", "output", "cached_input")


class UserPrice(NamedTuple):
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None

    def cost(self, call: Call) -> float:
        cached = min(call.cached_tokens, call.input_tokens or 0)
        fresh = (call.input_tokens or 0) - cached
        cached_rate = self.input if self.cached_input is None else self.cached_input
        return (
            fresh * self.input + cached * cached_rate + (call.output_tokens or 0) * self.output
        ) / PER_TOKENS


def _database() -> ModuleType | None:
    """genai-prices, imported on first use; None when it cannot be (a broken install)."""
    try:
        import genai_prices
    except ImportError:
        return None
    return genai_prices


@dataclass(eq=False)
class PriceBook:
    """Prices for a run: the user's, then the database's. Travels to the workers in the
    attempt's spec; lookups are cached per process."""

    user: dict[str, UserPrice] = field(default_factory=dict)
    source: str = ""  # the price file, for messages
    #: (model, provider) -> the genai-prices lookup that finds it, or None when none does
    _routes: dict[tuple[str, str | None], dict[str, str] | None] = field(
        default_factory=dict, repr=False
    )

    @classmethod
    def load(cls, path: Path | None) -> PriceBook:
        if path is None:
            return cls()
        return cls(read_price_file(path), str(path))

    def user_price(self, model: str) -> UserPrice | None:
        name = model.lower()
        exact = self.user.get(name)
        if exact is not None:
            return exact
        for pattern, price in self.user.items():
            if "*" in pattern and fnmatch.fnmatchcase(name, pattern):
                return price
        return None

    def known(self, model: str, provider: str | None = None) -> bool:
        """Is there a price for `model` (reached at `provider`, when given)?"""
        return self.user_price(model) is not None or self._route(model, provider) is not None

    def cost(self, call: Call) -> float | None:
        """The call's cost in USD, or None when nothing says what it cost."""
        if call.cost_usd is not None:
            return call.cost_usd
        if not call.metered:
            return None
        price = self.user_price(call.model)
        if price is not None:
            return price.cost(call)
        route = self._route(call.model, call.provider)
        if route is None:
            return None
        prices = _database()
        assert prices is not None  # a route was found with it
        usage = prices.Usage(
            input_tokens=call.input_tokens or 0,
            output_tokens=call.output_tokens or 0,
            cache_read_tokens=min(call.cached_tokens, call.input_tokens or 0) or None,
        )
        try:
            return float(prices.calc_price(usage, call.model, **route).total_price)
        except (LookupError, ValueError):
            return None

    def _route(self, model: str, provider: str | None) -> dict[str, str] | None:
        """How genai-prices finds `model`: by the provider it was called at when the database
        knows that provider (OpenRouter's `anthropic/claude-...` is priced as OpenRouter sells
        it), else by the model name alone (a local server or a proxy at an unknown URL)."""
        key = (model.lower(), provider)
        if key in self._routes:
            return self._routes[key]
        prices = _database()
        route: dict[str, str] | None = None
        if prices is not None and model:
            candidates: list[dict[str, str]] = []
            if provider:
                hint = "provider_api_url" if "://" in provider else "provider_id"
                candidates.append({hint: provider})
            candidates.append({})
            probe = prices.Usage(input_tokens=0, output_tokens=0)
            for candidate in candidates:
                try:
                    prices.calc_price(probe, model, **candidate)
                except (LookupError, ValueError):
                    continue
                route = candidate
                break
        self._routes[key] = route
        return route

    def preload(self, models: Iterable[ModelRef] = ()) -> None:
        """Import the database and find `models` in it now (see the module docstring: forked
        workers inherit both)."""
        for ref in list(models) or [ModelRef("gpt-4o-mini")]:
            self._route(ref.model, ref.provider)


def database_available() -> bool:
    return _database() is not None


def read_price_file(path: Path) -> dict[str, UserPrice]:
    """The user's prices, keyed by lower-cased model name (or pattern). Every mistake is a
    ConfigError naming the file and the model."""
    # imported here: a run without --prices (most) does not pay for the TOML parser at start-up
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the tomli backport, a dependency on 3.10 only
        import tomli as tomllib
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"--prices {path}: no such file") from None
    except IsADirectoryError:
        raise ConfigError(f"--prices {path}: is a directory; give a TOML file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--prices {path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"--prices {path}: cannot read it: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--prices {path}: not valid TOML: {exc}") from None
    models = data.get("models")
    unknown = sorted(set(data) - {"models"})
    if unknown or not isinstance(models, Mapping):
        raise ConfigError(
            f'--prices {path}: expected [models."NAME"] tables with input and output in USD '
            "per million tokens"
            + (f" (found {', '.join(repr(k) for k in unknown)})" if unknown else "")
        )
    prices: dict[str, UserPrice] = {}
    for name, entry in models.items():
        where = f"--prices {path}: model {name!r}"
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{where}: expected a table with input and output")
        extra = sorted(set(entry) - set(_FIELDS))
        if extra:
            raise ConfigError(
                f"{where}: unknown field {extra[0]!r} (fields: input, output, cached_input)"
            )
        values: dict[str, float] = {}
        for name_ in _FIELDS:
            value: Any = entry.get(name_)
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where}: {name_} must be a number (USD per million tokens)")
            if not math.isfinite(value) or value < 0:
                raise ConfigError(f"{where}: {name_} must be a number >= 0")
            values[name_] = float(value)
        missing = [f for f in ("input", "output") if f not in values]
        if missing:
            raise ConfigError(f"{where}: give {' and '.join(missing)} (USD per million tokens)")
        prices[str(name).lower()] = UserPrice(
            values["input"], values["output"], values.get("cached_input")
        )
    return prices
