"""``dispatch markets``: the configured markets as routing will see them (the region map)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dispatch.cli.common import settings_from
from dispatch.cli.errors import reported
from dispatch.files import write_text
from dispatch.settings import MarketConfig

if TYPE_CHECKING:
    from dispatch.regions import RegionMap

app = typer.Typer(help="The configured markets (DISPATCH_MARKETS).", no_args_is_help=True)


@app.command("regions")
def regions(
    market: Annotated[
        str | None, typer.Option("--market", help="Only this market (by name).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the map as JSON.")] = False,
    geojson: Annotated[
        Path | None,
        typer.Option(
            "--geojson",
            help="Also write the regions' outlines to this file (a GeoJSON FeatureCollection,"
            " one feature per region).",
        ),
    ] = None,
) -> None:
    """Print each market's region map: per region its shard, cells, expected load share
    (uniform over cells) and neighbouring regions. A market of "shards": N is cut into N
    contiguous regions of balanced load (dispatch/regions.py); a place of the market goes to
    its region's shard (rides at their pickup's, drivers at their home's), embedded and on
    Kafka."""
    from dispatch.regions import split_market

    settings = settings_from(None, None)
    chosen = _chosen(settings.markets, market)
    if geojson is not None:
        _check_writable(geojson)
    with reported("split the markets into regions"):
        maps = [split_market(m) for m in chosen]
    if as_json:
        print(json.dumps({"markets": [_market_json(m) for m in maps]}, indent=2))
    else:
        for i, region_map in enumerate(maps):
            if i:
                print()
            print(_market_text(region_map))
    if geojson is not None:
        with reported(f"write {geojson}"):
            write_text(geojson, json.dumps(_feature_collection(maps)))
        if not as_json:
            print(f"\nwrote {sum(len(m.regions) for m in maps)} regions to {geojson}")


def _chosen(markets: list[MarketConfig], name: str | None) -> list[MarketConfig]:
    if name is None:
        return list(markets)
    chosen = [m for m in markets if m.name == name]
    if not chosen:
        known = ", ".join(repr(m.name) for m in markets) or "none"
        raise typer.BadParameter(
            f"no market named {name!r} (DISPATCH_MARKETS has {known})", param_hint="--market"
        )
    return chosen


def _check_writable(path: Path) -> None:
    """Refuse, before any work, a GeoJSON path that cannot be written."""
    if path.is_dir():
        raise typer.BadParameter(f"{path} is a folder", param_hint="--geojson")
    parent = path.absolute().parent
    if not parent.is_dir():
        raise typer.BadParameter(f"no folder {parent}", param_hint="--geojson")
    if not os.access(parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise typer.BadParameter(f"cannot write {path}", param_hint="--geojson")


def _market_text(region_map: RegionMap) -> str:
    market = region_map.market
    shards = region_map.shards
    span = f"shard {shards[0]}" if len(shards) == 1 else f"shards {shards[0]}..{shards[-1]}"
    lines = [
        f"{market.name}: {len(shards)} region{'s' if len(shards) > 1 else ''} on {span}, "
        f"{len(region_map.cells)} H3 res-{region_map.resolution} cells "
        f"(centre {market.lat}, {market.lng}; radius {market.radius_km:g} km)",
        f"  {'shard':>5}  {'cells':>6}  {'load':>6}  neighbours",
    ]
    for region in region_map.regions:
        neighbours = ", ".join(str(n) for n in region.neighbours) or "-"
        share = region_map.load_share(region.shard)
        lines.append(f"  {region.shard:>5}  {region.cell_count:>6}  {share:>6.1%}  {neighbours}")
    if len(shards) > 1:
        lines.append("  routed by region: a place goes to the shard of its region")
    return "\n".join(lines)


def _market_json(region_map: RegionMap) -> dict[str, Any]:
    market = region_map.market
    return {
        "name": market.name,
        "shard": market.shard,
        "shards": market.shards,
        "resolution": region_map.resolution,
        "cells": len(region_map.cells),
        "weights": "uniform",
        "routed": True,  # every market is routed (a split one by region)
        "regions": [
            {
                "shard": region.shard,
                "cells": region.cell_count,
                "weight": region.weight,
                "load_share": region_map.load_share(region.shard),
                "neighbours": list(region.neighbours),
            }
            for region in region_map.regions
        ],
    }


def _feature_collection(maps: list[RegionMap]) -> dict[str, Any]:
    import h3

    features = []
    for region_map in maps:
        for region in region_map.regions:
            features.append(
                {
                    "type": "Feature",
                    "geometry": h3.cells_to_geo(list(region.cells)),
                    "properties": {
                        "market": region_map.market.name,
                        "shard": region.shard,
                        "region": region.index,
                        "cells": region.cell_count,
                        "load_share": region_map.load_share(region.shard),
                        "neighbours": list(region.neighbours),
                        "resolution": region_map.resolution,
                    },
                }
            )
    return {"type": "FeatureCollection", "features": features}
