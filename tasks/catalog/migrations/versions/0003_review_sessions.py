"""review: server-side sessions (revocable sign-out), structured data on decisions (view-order flips)

Revision ID: 0003_review
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_review"
down_revision = "0002"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_sessions",
        # sha256 of the random nonce in the signed cookie: a copy of the table opens no session
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
        sa.Column("client", sa.String(64)),
    )
    op.create_index("ix_review_sessions_reviewer", "review_sessions", ["reviewer"])
    # what a flip replaced (previous catalog fields, the folder holding the previous map files)
    op.add_column("review_decisions", sa.Column("data", sa.JSON))


def downgrade() -> None:
    # plain ALTER TABLE (SQLite >= 3.35): a batch copy would drop the append-only triggers
    op.drop_column("review_decisions", "data")
    op.drop_index("ix_review_sessions_reviewer", table_name="review_sessions")
    op.drop_table("review_sessions")
