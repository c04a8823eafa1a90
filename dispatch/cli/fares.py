"""``dispatch fares``: the fare rules in force and the version a quote names them by."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from dispatch.cli.common import settings_from
from dispatch.cli.errors import say
from dispatch.domain.fares import amount_text
from dispatch.domain.products import in_catalog_order
from dispatch.pricing.rules import (
    canonical,
    defaults_misfit,
    fares_of,
    rules_source,
    rules_version,
)
from dispatch.settings import FareRulesConfig

app = typer.Typer(help="The fare rules (DISPATCH_FARES).", no_args_is_help=True)


@app.command("rules")
def rules(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the rules as JSON (the hashed form).")
    ] = False,
) -> None:
    """Print the fare rules in force and their version (the one a quote names): each
    market's currency and, per product, the base, the price per km and per minute and the
    minimum; and the rules for pickups outside every market, if any. Without
    DISPATCH_FARES, the default rules in every market (with a warning on stderr when the
    markets are not the default ones). A quote's fare is explained by the rules printed
    under its version (docs/MARKETPLACE.md)."""
    settings = settings_from(None, None)
    config = fares_of(settings)
    version = rules_version(config)
    misfit = defaults_misfit(settings)
    if misfit is not None:
        say(f"warning: {misfit}")  # on stderr: --json stays JSON
    if as_json:
        print(json.dumps({"version": version, **canonical(config)}, indent=2))
        return
    print(f"fare rules {version} ({rules_source(settings)})")
    for name, market in sorted(config.markets.items()):
        print(_rules_text(name, market))
    if config.elsewhere is None:
        print("elsewhere: none (a pickup outside every market gets no quote)")
    else:
        print(_rules_text("elsewhere", config.elsewhere))


def _rules_text(name: str, rules: FareRulesConfig) -> str:
    lines = [f"{name} ({rules.currency})"]
    for product in in_catalog_order(rules.products):
        fare = rules.products[product]
        base, per_km, per_min, minimum = (
            amount_text(a, rules.currency)
            for a in (fare.base, fare.per_km, fare.per_min, fare.minimum)
        )
        lines.append(
            f"  {product:<11} base {base}, per km {per_km}, per minute {per_min}, minimum {minimum}"
        )
    return "\n".join(lines)
