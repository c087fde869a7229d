"""review: reviewer accounts, leases, append-only decision log, double-review pairs

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)
_APPEND_ONLY_MSG = "review_decisions is append-only"


def upgrade() -> None:
    op.create_table(
        "reviewers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(128), nullable=False, unique=True),
        sa.Column("password_hash", sa.Text, nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_table(
        "review_leases",
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("acquired_at", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
    )
    op.create_index("ix_review_leases_expires_at", "review_leases", ["expires_at"])
    op.create_index("ix_review_leases_reviewer", "review_leases", ["reviewer"])
    op.create_table(
        "review_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", TZ, nullable=False),
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), nullable=False),
        sa.Column("reviewer", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("decision", sa.String(16)),
        sa.Column("reason", sa.String(64)),
        sa.Column("comment", sa.Text),
        sa.Column("from_state", sa.String(24)),
        sa.Column("to_state", sa.String(24)),
        sa.Column("pipeline_version", sa.String(32)),
        sa.Column("via", sa.String(16)),
        sa.Column("supersedes_id", sa.Integer),
        # what the item looked like before this decision, so an undo can restore it exactly
        sa.Column("prev_reason", sa.String(64)),
        sa.Column("prev_detail", sa.Text),
        sa.Column("prev_reviewer", sa.String(128)),
        sa.Column("prev_decided_at", TZ),
    )
    op.create_index("ix_review_decisions_item_id", "review_decisions", ["item_id"])
    op.create_index("ix_review_decisions_reviewer_id", "review_decisions", ["reviewer", "id"])
    op.create_index("ix_review_decisions_at", "review_decisions", ["at"])
    op.create_table(
        "review_double",
        sa.Column("item_id", sa.String(32), sa.ForeignKey("items.id"), primary_key=True),
        sa.Column("first_reviewer", sa.String(128), nullable=False),
        sa.Column("first_decision", sa.String(16), nullable=False),
        sa.Column("first_decision_id", sa.Integer, nullable=False),
        sa.Column("second_reviewer", sa.String(128)),
        sa.Column("second_decision", sa.String(16)),
        sa.Column("second_decision_id", sa.Integer),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_review_double_open", "review_double", ["second_decision_id", "first_reviewer"])
    # The queue and the grid filter by state and sort by age or score; covering indexes let both
    # DBs answer "next 32 of 20k" from the index alone. Per-batch progress groups by (batch, state).
    op.create_index("ix_items_state_created", "items", ["state", "created_at", "id"])
    op.create_index("ix_items_state_score_id", "items", ["state", "score", "id"])
    op.create_index("ix_items_batch_state", "items", ["batch", "state"])

    # The decision log is append-only in the database itself, not only by convention.
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER review_decisions_no_{verb.lower()} BEFORE {verb} ON review_decisions "
                f"BEGIN SELECT RAISE(ABORT, '{_APPEND_ONLY_MSG}'); END"
            )
    elif dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION redweb_review_append_only() RETURNS trigger AS $$ "
            f"BEGIN RAISE EXCEPTION '{_APPEND_ONLY_MSG}'; END; $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER review_decisions_append_only BEFORE UPDATE OR DELETE ON review_decisions "
            "FOR EACH ROW EXECUTE FUNCTION redweb_review_append_only()"
        )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS review_decisions_append_only ON review_decisions")
        op.execute("DROP FUNCTION IF EXISTS redweb_review_append_only()")
    for name in ("ix_items_state_created", "ix_items_state_score_id", "ix_items_batch_state"):
        op.drop_index(name, table_name="items")
    op.drop_table("review_double")
    op.drop_table("review_decisions")  # SQLite drops the table's triggers with it
    op.drop_table("review_leases")
    op.drop_table("reviewers")
