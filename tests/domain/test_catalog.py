"""The catalog's indexes answer as a plain insertion-ordered dict would, draws included."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from emulator.domain.catalog import Catalog
from emulator.domain.model import Image


def image(number: int) -> Image:
    return Image(f"client_{number}", "client", "STANDARD", number, "policy", "ST_FULL", 1, 0.0, 86400)


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 30)), max_size=200), st.integers(0, 2**32))
def test_a_catalog_keeps_a_dicts_order_and_draws_as_rng_choice_of_its_list(changes, seed) -> None:
    catalog, reference = Catalog(), {}
    for add, number in changes:
        if add:
            catalog.add(image(number))
            reference.setdefault(f"client_{number}", image(number))
        else:
            catalog.pop(f"client_{number}")
            reference.pop(f"client_{number}", None)
        assert [i.backup_id for i in catalog.values()] == list(reference)
        assert [i.backup_id for i in catalog.newest_first()] == list(reversed(reference))
        assert len(catalog) == len(reference)
        if reference:
            assert catalog.choice(random.Random(seed)).backup_id == random.Random(seed).choice(list(reference.values())).backup_id


def test_an_image_added_again_keeps_its_place_and_one_catalogued_later_comes_last() -> None:
    catalog = Catalog()
    for number in (1, 2, 3):
        catalog.add(image(number))
    catalog.add(image(1))
    assert [i.backup_id for i in catalog.values()] == ["client_1", "client_2", "client_3"]
    first = catalog.order("client_1")
    catalog.pop("client_1")
    catalog.add(image(1))
    assert [i.backup_id for i in catalog.values()] == ["client_2", "client_3", "client_1"]
    assert catalog.order("client_1") is not None and catalog.order("client_1") > first
