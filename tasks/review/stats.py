"""Review statistics: progress per ingest batch and per reviewer, and double-review agreement."""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Sequence

from sqlalchemy import func, or_, select

from tasks.catalog.catalog import Catalog, Item
from tasks.review.tables import DECIDING_KINDS, DECISIONS, Decision, DoubleReview, aware, undone_ids

_COUNTED_KINDS = {"second": "second", "override": "overrides", "undo": "undos", "skip": "skips"}


@dataclass
class Agreement:
    pairs: int = 0
    agreed: int = 0
    kappa: float | None = None
    open: int = 0  # double-review items still waiting for their second reviewer
    disagreements: list[dict] = field(default_factory=list)

    @property
    def rate(self) -> float | None:
        return self.agreed / self.pairs if self.pairs else None


class Stats:
    """Read-only counts over one catalog; ``review_states`` are the states still to review."""

    def __init__(self, catalog: Catalog, *, review_states: Sequence[str]) -> None:
        self.catalog = catalog
        self.review_states = tuple(review_states)

    def progress_by_batch(self, batch: str | None = None) -> list[dict]:
        """Per ingest batch (or just ``batch``): total, still to review, accepted, rejected (by a
        person), other (ingest rejects such as duplicates or mono, failures, not yet processed, ...),
        and the reviewed share of the items that need a human decision (ingest rejects never did)."""
        person = Item.reviewer.is_not(None)
        q = select(Item.batch, Item.state, person, func.count()).group_by(Item.batch, Item.state, person)
        if batch is not None:
            q = q.where(Item.batch == batch)
        with self.catalog.session() as s:
            rows = s.execute(q).all()
        out: dict[str, dict] = {}
        for name, state, by_person, n in rows:
            d = out.setdefault(name or "-", dict(batch=name or "-", total=0, to_review=0, accepted=0,
                                                 rejected=0, other=0))
            d["total"] += n
            if state in self.review_states:
                key = "to_review"
            elif state in DECISIONS and by_person:
                key = state
            else:
                key = "other"
            d[key] += n
        for d in out.values():
            reviewable = d["to_review"] + d["accepted"] + d["rejected"]
            d["needs_review"] = reviewable
            d["done_fraction"] = (d["accepted"] + d["rejected"]) / reviewable if reviewable else None
        return sorted(out.values(), key=lambda d: d["batch"])

    def progress_by_reviewer(self, *, since: datetime | None = None) -> list[dict]:
        """Per reviewer: decisions by kind, accepts/rejects (undone ones not counted), last activity."""
        q = select(Decision.reviewer, Decision.kind, Decision.decision, func.count(), func.max(Decision.at)) \
            .where(or_(Decision.kind.in_(("undo", "skip")), Decision.id.not_in(undone_ids())))
        if since is not None:
            q = q.where(Decision.at >= since)
        with self.catalog.session() as s:
            rows = s.execute(q.group_by(Decision.reviewer, Decision.kind, Decision.decision)).all()
        out: dict[str, dict] = {}
        for reviewer, kind, decision, n, last in rows:
            d = out.setdefault(reviewer, dict(reviewer=reviewer, decided=0, accepted=0, rejected=0, second=0,
                                              overrides=0, undos=0, skips=0, last=None))
            if kind in DECIDING_KINDS:
                d["decided"] += n
                d[decision] += n
            if kind in _COUNTED_KINDS:
                d[_COUNTED_KINDS[kind]] += n
            last = aware(last)
            d["last"] = last if d["last"] is None or (last and last > d["last"]) else d["last"]
        return sorted(out.values(), key=lambda d: d["reviewer"])

    def agreement(self, *, max_listed: int = 100) -> Agreement:
        """Agreement between the two reviewers of double-review items, with Cohen's kappa."""
        with self.catalog.session() as s:
            rows = list(s.scalars(select(DoubleReview)))
        done = [r for r in rows if r.second_decision is not None]
        ag = Agreement(pairs=len(done), agreed=sum(r.first_decision == r.second_decision for r in done),
                       open=len(rows) - len(done))
        if done:
            # kappa = (p_o - p_e) / (1 - p_e), p_e from each rater's accept share
            p_o = ag.agreed / len(done)
            a1 = sum(r.first_decision == "accepted" for r in done) / len(done)
            a2 = sum(r.second_decision == "accepted" for r in done) / len(done)
            p_e = a1 * a2 + (1 - a1) * (1 - a2)
            ag.kappa = (p_o - p_e) / (1 - p_e) if p_e < 1 else None
        ag.disagreements = [dict(item_id=r.item_id, first_reviewer=r.first_reviewer, first=r.first_decision,
                                 second_reviewer=r.second_reviewer, second=r.second_decision)
                            for r in done if r.first_decision != r.second_decision][:max_listed]
        return ag
