"""The road-network options of ``simulate`` and ``experiment`` (``--road-network``,
``--eta``/``--etas``) and their checks: a network that cannot be read, or a road ETA without
a network, is a usage error naming the option."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dispatch.settings import Settings

if TYPE_CHECKING:
    from dispatch.simulator.city import City

ETAS = ("road", "straight")

RoadNetwork = Annotated[
    Path | None,
    typer.Option(
        "--road-network",
        help="Drivers drive routes over this road network, an OpenStreetMap extract "
        "(.osm.pbf; its graph is built once and kept beside it) or a built graph "
        "(.roads.npz); the city is placed on it (default DISPATCH_ROAD_NETWORK).",
    ),
]


def road_network(option: Path | None, settings: Settings) -> Path | None:
    """The road network given (the option, else DISPATCH_ROAD_NETWORK), read once to check
    it; None when there is none."""
    path = option if option is not None else settings.road_network
    if path is None:
        return None
    hint = "--road-network" if option is not None else "DISPATCH_ROAD_NETWORK"
    if not path.name.lower().endswith((".pbf", ".npz")):
        raise typer.BadParameter(
            f"{path}: a road network is an OpenStreetMap extract (.osm.pbf) or a built graph "
            "(.roads.npz)",
            param_hint=hint,
        )
    from dispatch.bootstrap import road_graph
    from dispatch.roads.graph import RoadGraphError

    try:
        road_graph(path.resolve())
    except RoadGraphError as error:
        raise typer.BadParameter(str(error), param_hint=hint) from None
    except OSError as error:  # e.g. the graph built from an extract cannot be kept beside it
        raise typer.BadParameter(
            f"{path}: {type(error).__name__}: {error}", param_hint=hint
        ) from None
    return path.resolve()


def parse_etas(value: str | None, network: Path | None, hint: str) -> tuple[str, ...]:
    """``road``, ``straight`` or both, comma-separated; default ``road`` with a network,
    else ``straight``. A road ETA needs a network."""
    if value is None:
        return ("road",) if network is not None else ("straight",)
    names = tuple(part.strip() for part in value.split(",") if part.strip())
    unknown = [n for n in names if n not in ETAS]
    if not names or unknown:
        raise typer.BadParameter(f"choose from {', '.join(ETAS)}, not {value!r}", param_hint=hint)
    if len(set(names)) != len(names):
        raise typer.BadParameter(f"an ETA named twice in {value!r}", param_hint=hint)
    if "road" in names and network is None:
        raise typer.BadParameter(
            "road ETAs need a road network: give --road-network (or DISPATCH_ROAD_NETWORK)",
            param_hint=hint,
        )
    return names


def graph_city(network: Path) -> City:
    """The simulated city placed on ``network`` (its extent; hot spots do not matter here)."""
    from dispatch.bootstrap import road_graph
    from dispatch.simulator.roads import city_over

    return city_over(road_graph(network), random.Random(0))


def on_roads(settings: Settings, network: Path | None, city_shards: int | None) -> Settings:
    """``settings`` for a run on ``network``: when DISPATCH_MARKETS was not set (and the
    city is not split by --city-shards), one market centred on the network that covers it
    instead of the default (San Francisco). The road ETA is chosen per run (``eta``)."""
    if network is None or city_shards is not None or "markets" in settings.model_fields_set:
        return settings
    from dispatch.simulator.cityshards import split_city

    return split_city(settings, 1, city=graph_city(network))


def with_eta(settings: Settings, network: Path | None, eta: str) -> Settings:
    """The engine's settings: road ETAs over ``network`` or the straight-line estimate."""
    return settings.model_copy(update={"road_network": network if eta == "road" else None})
