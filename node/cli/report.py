"""``hashmesh report --from DATE --to DATE [--out DIR]``: the transparency report.

Reads the node's store directly (as ``export`` does; the node may be running) and writes
``report.json`` and ``report.html`` into ``DIR`` (``node/reporting``).
"""

from __future__ import annotations

import argparse

from hashmesh.node.cli.local import _open_existing_store
from hashmesh.node.cli.support import CliError, print_json
from hashmesh.node.config.identity import Identity
from hashmesh.node.config.node import load_node_config
from hashmesh.node.reporting.figures import Period, build_report, report_json
from hashmesh.node.reporting.page import render_page


def report(args: argparse.Namespace) -> int:
    try:
        period = Period.parse(args.start, args.end)
    except ValueError as exc:
        raise CliError(str(exc)) from None
    config = load_node_config(args.config)
    origin = Identity.load(config).origin
    store = _open_existing_store(config)
    try:
        figures = build_report(store, config, config.load_peers(), origin, period)
    finally:
        store.close()
    args.out.mkdir(parents=True, exist_ok=True)
    json_path, html_path = args.out / "report.json", args.out / "report.html"
    json_path.write_text(report_json(figures), encoding="utf-8")
    html_path.write_text(render_page(figures), encoding="utf-8")
    print_json({"json": str(json_path), "html": str(html_path), "period": figures["period"]})
    return 0
