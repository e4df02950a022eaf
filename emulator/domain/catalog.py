"""The image catalog's indexes: images in the order they were catalogued, cheap to pick from as they grow.

A master's catalog only grows while a run lasts (hours of a soak, every image a
backup made), and scenarios pick images from it at every step: the oldest one fit
for a restore, a random live one, the newest not yet replicated. :class:`Catalog`
keeps the order, a random draw in O(1) and removal in O(log n); :class:`Candidates`
keeps, per purpose, a heap of the images that may fit it, so that images a purpose
no longer fits are passed once, not on every pick.
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
from collections.abc import Callable, Iterator

from emulator.domain.model import Image


class Catalog:
    """Images by backup id, in the order they were added (oldest first), with their place in that order.

    Iteration, ``values()`` and ``choice()`` see the same order as a dict filled the
    same way would, so a seeded draw picks the same image as ``rng.choice(list(d.values()))``.
    """

    def __init__(self) -> None:
        self._images: dict[str, Image] = {}
        self._order: dict[str, int] = {}  # backup id -> its sequence number
        self._ids: list[str] = []  # by sequence number, ascending
        self._sequences: list[int] = []  # the sequence number of each of _ids
        self._next = itertools.count()

    def __len__(self) -> int:
        return len(self._images)

    def __contains__(self, backup_id: object) -> bool:
        return backup_id in self._images

    def get(self, backup_id: str) -> Image | None:
        return self._images.get(backup_id)

    def values(self) -> Iterator[Image]:
        return iter(self._images.values())

    def newest_first(self) -> Iterator[Image]:
        return reversed(self._images.values())

    def order(self, backup_id: str) -> int | None:
        """``backup_id``'s place in the order (a number that only grows), None when it is not here."""
        return self._order.get(backup_id)

    def add(self, image: Image) -> None:
        """Add ``image`` as the newest (an image already here keeps its place)."""
        if image.backup_id in self._images:
            return
        sequence = next(self._next)
        self._images[image.backup_id] = image
        self._order[image.backup_id] = sequence
        self._ids.append(image.backup_id)
        self._sequences.append(sequence)

    def pop(self, backup_id: str) -> Image | None:
        image = self._images.pop(backup_id, None)
        if image is not None:
            index = bisect.bisect_left(self._sequences, self._order.pop(backup_id))
            del self._ids[index], self._sequences[index]
        return image

    def choice(self, rng: random.Random) -> Image:
        """A random image, drawn as ``rng.choice`` draws from a list of them in order."""
        return self._images[rng.choice(self._ids)]


class Candidates:
    """Per purpose (and AIR target), heaps of catalogued images that may fit it, oldest or newest on top.

    The invariant: every image that fits has an entry. An entry found unfit on top is
    dropped; whatever may make an image fit again calls :meth:`reconsider`, which pushes
    it back. Stale entries (images gone, or catalogued again later) are skipped.
    """

    def __init__(self, catalog: Catalog) -> None:
        self._catalog = catalog
        self._heaps: dict[tuple[str, str, bool], list[tuple[int, str]]] = {}

    def first(self, key: tuple[str, str, bool], fits: Callable[[Image], bool]) -> Image | None:
        """The oldest (``key[2]`` False) or newest image that ``fits``; ``key`` is (purpose, target, newest)."""
        heap = self._heap(key, fits)
        catalog = self._catalog
        while heap:
            order, backup_id = heap[0]
            image = catalog.get(backup_id)
            if image is not None and catalog.order(backup_id) == abs(order) and fits(image):
                return image
            heapq.heappop(heap)  # unfit now: should it fit again, reconsider() pushes it back
        return None

    def reconsider(self, image: Image) -> None:
        """``image`` was catalogued, or changed in a way that may make it fit a purpose again."""
        order = self._catalog.order(image.backup_id)
        if order is None:
            return
        for (_, _, newest), heap in self._heaps.items():
            heapq.heappush(heap, (-order if newest else order, image.backup_id))

    def _heap(self, key: tuple[str, str, bool], fits: Callable[[Image], bool]) -> list[tuple[int, str]]:
        heap = self._heaps.get(key)
        if heap is None or len(heap) > 2 * len(self._catalog) + 64:  # made on first use; rebuilt when stale entries pile up
            sign = -1 if key[2] else 1
            heap = [
                (sign * (self._catalog.order(image.backup_id) or 0), image.backup_id) for image in self._catalog.values() if fits(image)
            ]
            heapq.heapify(heap)
            self._heaps[key] = heap
        return heap
