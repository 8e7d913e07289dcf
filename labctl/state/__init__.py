"""State collectors: real tables read from the nodes, as typed records."""

from .arp import ArpEntry, parse_neigh_json
from .shows import COMMON_SHOWS, ShowError, collect, shows_for
from .xlate import Flow, XlateEntry, parse_conntrack_xml, render_xlate, xlate_entries

__all__ = [
    "COMMON_SHOWS",
    "ArpEntry",
    "Flow",
    "ShowError",
    "XlateEntry",
    "collect",
    "parse_conntrack_xml",
    "parse_neigh_json",
    "render_xlate",
    "shows_for",
    "xlate_entries",
]
