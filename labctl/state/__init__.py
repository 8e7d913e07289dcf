"""State collectors: real tables read from the nodes, as typed records."""

from .arp import ArpEntry, parse_neigh_json
from .shows import SHOWS, Show, ShowError, collect
from .xlate import Flow, XlateEntry, parse_conntrack_xml, render_xlate, xlate_entries

__all__ = [
    "SHOWS",
    "ArpEntry",
    "Flow",
    "Show",
    "ShowError",
    "XlateEntry",
    "collect",
    "parse_conntrack_xml",
    "parse_neigh_json",
    "render_xlate",
    "xlate_entries",
]
