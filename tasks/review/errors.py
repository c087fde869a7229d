"""The two ways a review action is refused; the web app maps them to HTTP 400 and 409."""
from __future__ import annotations


class ReviewError(ValueError):
    """A review action that cannot be done (bad input); HTTP 400."""


class ReviewConflict(ReviewError):
    """Someone else holds the item, or the item moved on; HTTP 409."""
