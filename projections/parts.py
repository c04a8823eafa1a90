"""Views kept by key, so that keeping them costs what changed, not what they hold.

A view whose bulk is dicts and sets keyed by the id of the aggregate whose events change
them (a driver's row, a ride's cell) names those attributes in ``KEPT_BY_KEY``. Such a view
is kept whole now and then, and in between as changes on that: its *rest* (the view with
those attributes emptied: checkpoint, totals, tenures; small, pickled at each keeping) and
one *part* for each key that changed (the key's entry in each of those attributes, pickled
on its own; an empty part: the key is gone). The views remember which keys changed since
they were last kept (``projections.views.ViewSet``: the aggregate of every event folded
into the view, and what a view's ``settle`` names), so a keeping writes those parts only
(``projections.store.ViewChanges``); taken up, the whole view gets the newest rest and
every part kept since, in order (``projections.store.decode``).

What a view may keep by key: only what events of that aggregate (or its ``settle``) change.
What pings change is not kept at all (each view's ``__getstate__``). A part's shape is the
view's kept form: a field added to a row changes it (``projections.store.VIEW_FORMAT``).
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable
from typing import Any

# One entry of a dict attribute in a part: () when the key is not in it, else (value,).
Entry = tuple[Any, ...] | bool


def kept_by_key(view: object) -> tuple[str, ...]:
    """The attributes of ``view`` kept by key (none: the view is kept whole)."""
    names: tuple[str, ...] = getattr(type(view), "KEPT_BY_KEY", ())
    return names


# In ``KEPT_BY_KEY``: the view itself, a mapping by key (the rides view).
ITSELF = "."


def rest(view: Any) -> Any:
    """A copy of ``view`` whose attributes kept by key are empty (what else it holds is
    shared with ``view``, not copied: pickle it before the view changes). A view that is
    itself a mapping kept by key comes out an empty one."""
    cls: Any = type(view)
    out = cls.__new__(cls)  # not copy.copy: a view's own pickling encodes all it holds
    out.__dict__.update(view.__dict__)
    for name in kept_by_key(view):
        if name != ITSELF:
            setattr(out, name, type(getattr(view, name))())
    return out


def adopt(rest: Any, whole: Any) -> None:
    """Give ``rest`` (a view's newer rest) the entries kept by key of ``whole`` (the same
    view kept whole before): the view as it was then, with its newer rest."""
    for name in kept_by_key(rest):
        if name == ITSELF:
            rest.update(whole)
        else:
            setattr(rest, name, getattr(whole, name))


def keys(view: Any) -> int:
    """How many keys the view holds (by its first attribute kept by key)."""
    names = kept_by_key(view)
    return len(_attr(view, names[0])) if names else 0


def _attr(view: Any, name: str) -> Any:
    return view if name == ITSELF else getattr(view, name)


def part(view: Any, key: str) -> bytes | None:
    """The key's entries in each attribute kept by key, pickled; None when none holds it."""
    entries: list[Entry] = []
    held = False
    for name in kept_by_key(view):
        attr = _attr(view, name)
        entry: Entry
        if isinstance(attr, (set, frozenset)):
            entry = key in attr
        else:
            value = attr.get(key, _ABSENT)
            entry = () if value is _ABSENT else (value,)
        held = held or bool(entry)
        entries.append(entry)
    return pickle.dumps(tuple(entries), protocol=5) if held else None


def join(view: Any, kept: Iterable[tuple[str, bytes]]) -> None:
    """Put kept parts into ``view``, in the order given: each replaces its key's entries
    (an empty part: the key is gone from every attribute)."""
    names = kept_by_key(view)
    attrs = [_attr(view, name) for name in names]
    for key, blob in kept:
        entries = (
            pickle.loads(blob) if blob else [False if isinstance(a, set) else () for a in attrs]
        )
        if len(entries) != len(attrs):
            raise ValueError(f"a part of {len(entries)} entries, the view keeps {len(attrs)}")
        for attr, entry in zip(attrs, entries, strict=True):
            if isinstance(attr, set):
                if entry:
                    attr.add(key)
                else:
                    attr.discard(key)
            elif entry:
                attr[key] = entry[0]
            else:
                attr.pop(key, None)


_ABSENT = object()
