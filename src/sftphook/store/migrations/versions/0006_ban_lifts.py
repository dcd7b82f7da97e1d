"""when an operator lifted an address's ban (`sftphook bans lift`), for every node to take

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lifted_at", sa.BigInteger(), nullable=True))
        batch_op.create_index("ix_login_failures_lifted_at", ["lifted_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("login_failures", schema=None) as batch_op:
        batch_op.drop_index("ix_login_failures_lifted_at")
        batch_op.drop_column("lifted_at")
