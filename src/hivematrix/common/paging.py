"""Which page of a list a page shows, and the page links around it (the kit's ``ui.html``
``pagination`` macro renders it)."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Pager:
    page: int
    per_page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.per_page))

    @property
    def offset(self) -> int:
        return (self.page - 1) * self.per_page

    @property
    def first_shown(self) -> int:
        return min(self.offset + 1, self.total)

    @property
    def last_shown(self) -> int:
        return min(self.offset + self.per_page, self.total)

    def links(self, around: int = 2) -> list[int | None]:
        """Page numbers to link: the first, the last and ``around`` either side of the
        current one; ``None`` marks a gap."""
        wanted = {1, self.pages, *range(self.page - around, self.page + around + 1)}
        numbers = sorted(number for number in wanted if 1 <= number <= self.pages)
        shown: list[int | None] = []
        previous = 0
        for number in numbers:
            if previous and number - previous > 1:
                shown.append(None)
            shown.append(number)
            previous = number
        return shown
