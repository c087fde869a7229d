"""initial catalog: items, events, crawl cursors

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("source_id", sa.Text, nullable=False),
        sa.Column("url", sa.Text), sa.Column("page_url", sa.Text), sa.Column("owner", sa.Text),
        sa.Column("license", sa.Text), sa.Column("license_url", sa.Text), sa.Column("title", sa.Text),
        sa.Column("fetched_at", TZ), sa.Column("batch", sa.String(64)),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64)), sa.Column("reason_detail", sa.Text),
        sa.Column("raw_path", sa.Text), sa.Column("file_bytes", sa.BigInteger),
        sa.Column("content_sha256", sa.String(64)), sa.Column("phash", sa.String(16)),
        sa.Column("duplicate_of", sa.String(32)),
        sa.Column("raw_width", sa.Integer), sa.Column("raw_height", sa.Integer),
        sa.Column("stereo_format", sa.String(32)), sa.Column("swapped", sa.Boolean),
        sa.Column("view_order", sa.String(24)),
        sa.Column("left_path", sa.Text), sa.Column("right_path", sa.Text),
        sa.Column("view_width", sa.Integer), sa.Column("view_height", sa.Integer),
        sa.Column("image_path", sa.Text), sa.Column("depth_path", sa.Text), sa.Column("mask_path", sa.Text),
        sa.Column("sky_path", sa.Text), sa.Column("preview_path", sa.Text),
        sa.Column("crop_x0", sa.Integer), sa.Column("crop_y0", sa.Integer),
        sa.Column("crop_x1", sa.Integer), sa.Column("crop_y1", sa.Integer),
        sa.Column("quality", sa.JSON), sa.Column("score", sa.Float), sa.Column("pipeline_version", sa.String(32)),
        sa.Column("reviewer", sa.String(128)), sa.Column("decided_at", TZ), sa.Column("info", sa.JSON),
        sa.Column("created_at", TZ, nullable=False), sa.Column("updated_at", TZ, nullable=False),
        sa.UniqueConstraint("source", "source_id", name="uq_items_source"),
    )
    for col in ("source", "batch", "state", "reason", "content_sha256", "phash", "score"):
        op.create_index(f"ix_items_{col}", "items", [col])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("from_state", sa.String(24)), sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("reason", sa.String(64)), sa.Column("detail", sa.Text), sa.Column("pipeline_version", sa.String(32)),
    )
    op.create_index("ix_events_item_id", "events", ["item_id"])
    op.create_index("ix_events_at", "events", ["at"])
    op.create_table(
        "crawl_cursors",
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("done", sa.Boolean, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("crawl_cursors")
    op.drop_table("events")
    op.drop_table("items")
