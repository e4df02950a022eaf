"""Paging as NetBackup does it: by offset (``page[offset]``/``page[limit]``) or, for
``/admin/jobs`` from API 9.0, by cursor (``page[after]``/``page[before]``/``sort``)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urlencode

from emulator.rest.errors import HttpError

Resource = dict[str, Any]
MAX_LIMIT = 100
DEFAULT_LIMIT = 10


def query_int(query: Mapping[str, str], name: str, default: int, low: int, high: int | None) -> int:
    """A whole-number query parameter within bounds, else NetBackup's 400."""
    raw = query.get(name)
    if raw is None:
        return default
    text = raw.strip()
    if not text.isdigit() or int(text) < low or (high is not None and int(text) > high):
        bound = f" and {high}" if high is not None else ""
        raise HttpError(400, f"{name} must be a whole number between {low}{bound}", details=[f"{name}={raw!r}"])
    return int(text)


def href(base: str, path: str, query: Mapping[str, str]) -> str:
    """A link to ``path`` with ``query``, brackets kept readable as NetBackup writes them."""
    return f"{base}{path}?{urlencode(query, quote_via=quote, safe='[]')}" if query else f"{base}{path}"


def offset_page(resources: Sequence[Resource], query: Mapping[str, str], base: str, path: str, *, min_limit: int = 1) -> dict[str, Any]:
    """One page of ``resources`` by ``page[offset]``/``page[limit]``, with ``meta.pagination`` and links."""
    limit = query_int(query, "page[limit]", DEFAULT_LIMIT, min_limit, MAX_LIMIT)
    offset = query_int(query, "page[offset]", 0, 0, None)
    count = len(resources)
    step = max(limit, 1)
    last = ((count - 1) // step) * step if count else 0
    pagination: dict[str, int] = {"first": 0, "last": last, "count": count, "offset": offset, "limit": limit}
    kept = {k: v for k, v in query.items() if k not in ("page[offset]", "page[limit]")}

    def at(where: int) -> dict[str, str]:
        return {"href": href(base, path, {**kept, "page[offset]": str(where), "page[limit]": str(limit)})}

    links: dict[str, Any] = {"self": {"href": href(base, path, dict(query))}, "first": at(0), "last": at(last)}
    if limit and offset + limit < count:
        pagination["next"] = offset + limit
        links["next"] = at(offset + limit)
    if offset > 0:
        pagination["prev"] = max(0, offset - step)
        links["prev"] = at(max(0, offset - step))
    return {"data": list(resources[offset : offset + limit]), "meta": {"pagination": pagination}, "links": links}


def _cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _uncursor(text: str, name: str) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
    except ValueError:
        key = None
    if not isinstance(key, list) or len(key) != 3:
        raise HttpError(400, f"{name} is not a cursor this server gave", details=[f"{name}={text!r}"])
    return key


def cursor_page(
    resources: Sequence[Resource],
    query: Mapping[str, str],
    base: str,
    path: str,
    *,
    sortable: frozenset[str],
    default_sort: str,
    identity: Callable[[Resource], int],
) -> dict[str, Any]:
    """One page of ``resources`` by cursor: ``sort`` orders, ``page[after]``/``page[before]`` pick.

    A cursor names a record's place in its order (its sort value and identity), so pages stay
    right while records are added. ``meta.pagination.next`` is the cursor the next page comes
    after; ``prev`` the one the previous page comes before.
    """
    limit = query_int(query, "page[limit]", DEFAULT_LIMIT, 0, MAX_LIMIT)
    sort = query.get("sort", default_sort).strip() or default_sort
    descending = sort.startswith("-")
    name = sort.lstrip("-+")
    if name not in sortable:
        raise HttpError(400, f"cannot sort on {name!r}", details=[f"sortable attributes: {', '.join(sorted(sortable))}"])

    def key(resource: Resource) -> list[Any]:
        value = resource["attributes"].get(name)
        # None sorts first; the identity breaks ties so that every record has one place
        return [value is not None, value if value is not None else 0, identity(resource)]

    ordered = sorted(resources, key=lambda r: tuple(key(r)), reverse=descending)

    def before(a: list[Any], b: list[Any]) -> bool:
        """Whether key ``a`` comes before ``b`` in this order."""
        try:
            return tuple(a) > tuple(b) if descending else tuple(a) < tuple(b)
        except TypeError:
            raise HttpError(400, "the cursor does not belong to this sort order") from None

    after_text, before_text = query.get("page[after]"), query.get("page[before]")
    window = ordered
    if after_text:
        after_key = _uncursor(after_text, "page[after]")
        window = [r for r in window if before(after_key, key(r))]
    if before_text:
        before_key = _uncursor(before_text, "page[before]")
        window = [r for r in window if before(key(r), before_key)]
    truncated = False
    if before_text and not after_text:
        page = window[-limit:] if limit else []
    else:
        page = window[:limit]
        truncated = bool(after_text and before_text and len(window) > limit)
    pagination: dict[str, Any] = {"limit": limit}
    kept = {k: v for k, v in query.items() if k not in ("page[after]", "page[before]")}
    links: dict[str, Any] = {"self": {"href": href(base, path, dict(query))}, "first": {"href": href(base, path, kept)}}
    data = []
    for resource in page:
        data.append({**resource, "meta": {"page": {"cursor": _cursor(key(resource))}}})
    if page:
        place = {id(resource): index for index, resource in enumerate(ordered)}
        first_index, last_index = place[id(page[0])], place[id(page[-1])]
        if last_index + 1 < len(ordered):
            pagination["next"] = _cursor(key(page[-1]))
            links["next"] = {"href": href(base, path, {**kept, "page[after]": pagination["next"]})}
        if first_index > 0:
            pagination["prev"] = _cursor(key(page[0]))
            links["prev"] = {"href": href(base, path, {**kept, "page[before]": pagination["prev"]})}
    if truncated:
        pagination["rangeTruncated"] = True
    return {"data": data, "meta": {"pagination": pagination}, "links": links}
