"""The journal's control tables: what people decided about pipelines, and who is up.

``podium_pipeline_controls``  a pipeline paused by hand (``podium pause``): survives
                              restarts and reloads, and holds on every node
``podium_nodes``              every daemon's heartbeat: the status page's cluster view
"""

from __future__ import annotations

import sqlalchemy as sa

from ._schema import metadata
from ._types import UTCDateTime

controls_table = sa.Table(
    "podium_pipeline_controls",
    metadata,
    sa.Column("pipeline", sa.String(200), primary_key=True),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("reason", sa.Text),
    sa.Column("by", sa.String(200)),
    sa.Column("at", UTCDateTime(), nullable=False),
)

nodes_table = sa.Table(
    "podium_nodes",
    metadata,
    sa.Column("node_id", sa.String(160), primary_key=True),
    sa.Column("host", sa.String(255)),
    sa.Column("port", sa.Integer),
    sa.Column("pid", sa.Integer),
    sa.Column("version", sa.String(40)),
    sa.Column("started_at", UTCDateTime(), nullable=False),
    sa.Column("last_seen", UTCDateTime(), nullable=False),
    sa.Column("stopped_at", UTCDateTime()),
)

CONTROL_TABLES = [controls_table, nodes_table]
