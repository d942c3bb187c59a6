"""The cluster as a networkx graph: builders, a fast index for the physics, layout and zoom levels."""

from .graph import LINK_KINDS, NODE_KINDS, ClosPlan, build_graph, chip_name, link_kind, plan_clos, server_name
from .index import FabricIndex, GroupLinks

__all__ = [
    "LINK_KINDS",
    "NODE_KINDS",
    "ClosPlan",
    "FabricIndex",
    "GroupLinks",
    "build_graph",
    "chip_name",
    "link_kind",
    "plan_clos",
    "server_name",
]  # fmt: skip
