"""withdrawn: owner account id, last revalidation time, withdrawal time

The ``withdrawn`` state itself needs no DDL (states are strings checked in tasks/catalog/catalog.py). This
revision adds what revalidation and takedown need: ``owner_id`` (the source's account id, Flickr's
NSID, backfilled from ``info.flickr.owner_nsid``), ``checked_at`` (last check at the source, for
``redweb revalidate --older-than``) and ``withdrawn_at``.

Revision ID: 0003_withdrawn
Revises: 0003_review (the review-sessions revision landed first; this one follows it)
"""
import json

import sqlalchemy as sa
from alembic import op

revision = "0003_withdrawn"
down_revision = "0003_review"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("items", sa.Column("owner_id", sa.String(128)))
    op.add_column("items", sa.Column("checked_at", TZ))
    op.add_column("items", sa.Column("withdrawn_at", TZ))
    op.create_index("ix_items_owner_id", "items", ["owner_id"])
    items = sa.table("items", sa.column("id", sa.String), sa.column("source", sa.String),
                     sa.column("info", sa.JSON), sa.column("owner_id", sa.String))
    conn = op.get_bind()
    rows = conn.execute(sa.select(items.c.id, items.c.info).where(items.c.source == "flickr")).all()
    for item_id, info in rows:
        if isinstance(info, str):  # some drivers hand JSON back as text
            info = json.loads(info)
        nsid = ((info or {}).get("flickr") or {}).get("owner_nsid")
        if nsid:
            conn.execute(items.update().where(items.c.id == item_id).values(owner_id=str(nsid)))


def downgrade() -> None:
    op.drop_index("ix_items_owner_id", table_name="items")
    with op.batch_alter_table("items") as batch:
        batch.drop_column("withdrawn_at")
        batch.drop_column("checked_at")
        batch.drop_column("owner_id")
