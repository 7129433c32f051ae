"""The transparency report as one self-contained HTML page: inline CSS, plots as inline SVG
drawn by matplotlib (headless Agg backend), a table of the numbers under every plot, and
nothing fetched from anywhere (a regulator may open it offline, or archive it as it is).

matplotlib is imported here only, when a report is written: ``hashmesh --help`` and every
other command never pay for it.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import Any

from jinja2 import Environment, select_autoescape

COLOURS = ("#1f5f8b", "#d1772e", "#3a8d5c", "#8c3b7a")


def render_page(report: dict[str, Any]) -> str:
    """The HTML of ``report`` (``figures.build_report``)."""
    weeks = [week[5:] for week in report["weeks"]]  # MM-DD of each week's Monday
    cases, own = report["cases"], report["log"]
    organisations = report["organisations"]
    removal = report["time_to_removal"]
    disputes = report["disputes"]["by_organisation"]
    plots = {
        "cases": _bars("Cases opened and withdrawn per week", weeks,
                       {"opened": cases["opened"], "withdrawn": cases["withdrawn"]},
                       "week starting", "cases"),
        "log": _bars("Items added and revoked per week (this node's log)", weeks,
                     {"items added": own["items_added"], "items revoked": own["items_revoked"]},
                     "week starting", "items"),
        "organisations": _bars(
            "Matches and actions reported per organisation",
            [o["name"] for o in organisations],
            {"matches": [o["matches"] for o in organisations],
             "actioned": [o["actioned"] for o in organisations],
             "confirmed": [o["confirmed"] for o in organisations]}, None, "count"),
        "removal": _bars(
            "Time to removal per peer (seconds)", [r["peer"] for r in removal],
            {"median": [r["p50_s"] for r in removal], "90th percentile":
             [r["p90_s"] for r in removal], "99th percentile": [r["p99_s"] for r in removal]},
            None, "seconds"),
        "disputes": _bars("Disputes reported per organisation", [d["name"] for d in disputes],
                          {"disputed": [d["disputed"] for d in disputes],
                           "not NCII": [d["not_ncii"] for d in disputes]}, None, "count"),
    }
    environment = Environment(autoescape=select_autoescape(default=True))
    return environment.from_string(TEMPLATE).render(r=report, plots=plots, weeks=weeks)


def _bars(title: str, labels: Sequence[str], series: dict[str, Sequence[float]],
          xlabel: str | None, ylabel: str) -> str | None:
    """Grouped bars as an ``<svg>`` element (text kept as text), or None with no data."""
    if not labels or not any(any(values) for values in series.values()):
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.fonttype": "none", "svg.hashsalt": "hashmesh-report",
                         "font.size": 9})
    figure, axes = plt.subplots(figsize=(max(5.5, 0.5 * len(labels) * len(series)), 3.0))
    width = 0.8 / len(series)
    positions = range(len(labels))
    for index, (name, values) in enumerate(series.items()):
        axes.bar([p + (index - (len(series) - 1) / 2) * width for p in positions], values,
                 width, label=name, color=COLOURS[index % len(COLOURS)])
    axes.set_title(title)
    axes.set_xticks(list(positions), labels, rotation=45 if len(labels) > 6 else 0,
                    ha="right" if len(labels) > 6 else "center")
    if xlabel:
        axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    axes.spines[["top", "right"]].set_visible(False)
    if ylabel != "seconds":  # counts: whole numbers on the axis
        from matplotlib.ticker import MaxNLocator

        axes.yaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend(frameon=False, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    figure.tight_layout()
    out = io.StringIO()
    figure.savefig(out, format="svg", metadata={"Date": None})
    plt.close(figure)
    text = out.getvalue()
    return text[text.index("<svg"):]


TEMPLATE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Transparency report: {{ r.node }}, {{ r.period.from }} to {{ r.period.to }}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1d2430; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.2rem; margin-top: 2.2rem; border-bottom: 1px solid #d5dae1; }
.lead { color: #4a5565; }
.totals { display: flex; flex-wrap: wrap; gap: 1rem; padding: 0; list-style: none; }
.totals li { background: #f1f4f8; border-radius: .4rem; padding: .6rem 1rem; }
.totals strong { display: block; font-size: 1.4rem; }
figure { margin: 1rem 0; } svg { max-width: 100%; height: auto; }
table { border-collapse: collapse; font-size: .9rem; margin: .5rem 0; }
th, td { border: 1px solid #d5dae1; padding: .25rem .6rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.empty { color: #6b7380; font-style: italic; }
footer { margin-top: 3rem; font-size: .85rem; color: #6b7380; }
</style>
</head>
<body>
<h1>Transparency report: {{ r.node }}</h1>
<p class="lead">From {{ r.period.from }} to {{ r.period.to }} (UTC, both days included).
Aggregates only: no hash, record, case reference or query appears in this report.</p>
<ul class="totals">
<li><strong id="total-cases-opened">{{ r.cases.total_opened }}</strong>cases opened</li>
<li><strong id="total-cases-withdrawn">{{ r.cases.total_withdrawn }}</strong>cases withdrawn</li>
<li><strong id="total-items-added">{{ r.log.total_items_added }}</strong>items added</li>
<li><strong id="total-items-revoked">{{ r.log.total_items_revoked }}</strong>items revoked</li>
<li><strong id="total-matches">{{ r.organisations | sum(attribute="matches") }}</strong>matches</li>
<li><strong id="quarantined">{{ r.disputes.quarantined_items_now }}</strong>
items quarantined now</li>
</ul>

<section id="cases">
<h2>Cases opened and withdrawn</h2>
{% if plots.cases %}<figure>{{ plots.cases | safe }}</figure>{% else %}
<p class="empty">No cases were opened or withdrawn in this period.</p>{% endif %}
<table><tr><th>Week starting</th>{% for w in r.weeks %}<th>{{ w }}</th>{% endfor %}</tr>
<tr><td>opened</td>{% for n in r.cases.opened %}<td>{{ n }}</td>{% endfor %}</tr>
<tr><td>withdrawn</td>{% for n in r.cases.withdrawn %}<td>{{ n }}</td>{% endfor %}</tr></table>
</section>

<section id="log">
<h2>Adds and revokes</h2>
<p>This node's own signed log: {{ r.log.total_add_records }} add records with
{{ r.log.total_items_added }} items; {{ r.log.total_revoke_records }} revoke records, which
withdrew {{ r.log.total_items_revoked }} items or whole records.</p>
{% if plots.log %}<figure>{{ plots.log | safe }}</figure>{% else %}
<p class="empty">Nothing was added or revoked in this period.</p>{% endif %}
<table><tr><th>Week starting</th>{% for w in r.weeks %}<th>{{ w }}</th>{% endfor %}</tr>
<tr><td>items added</td>{% for n in r.log.items_added %}<td>{{ n }}</td>{% endfor %}</tr>
<tr><td>items revoked</td>{% for n in r.log.items_revoked %}<td>{{ n }}</td>{% endfor %}</tr>
</table>
</section>

<section id="organisations">
<h2>Matches and actions per organisation</h2>
<p>Matches: queries answered here that hit the organisation's hashes. Actions: feedback the
organisation signed with the verdict <em>actioned</em> or <em>confirmed</em>.</p>
{% if plots.organisations %}<figure>{{ plots.organisations | safe }}</figure>{% else %}
<p class="empty">No matches or actions in this period.</p>{% endif %}
{% if r.organisations %}<table><tr><th>Organisation</th><th>matches</th><th>actioned</th>
<th>confirmed</th></tr>{% for o in r.organisations %}<tr><td>{{ o.name }}</td>
<td>{{ o.matches }}</td><td>{{ o.actioned }}</td><td>{{ o.confirmed }}</td></tr>{% endfor %}
</table>{% endif %}
</section>

<section id="removal">
<h2>Time to removal per peer</h2>
<p>From each peer's signed receipts: how long after a revoke was signed the peer stopped
matching it.</p>
{% if plots.removal %}<figure>{{ plots.removal | safe }}</figure>{% else %}
<p class="empty">No removal receipts in this period.</p>{% endif %}
{% if r.time_to_removal %}<table><tr><th>Peer</th><th>removals</th><th>median (s)</th>
<th>90th (s)</th><th>99th (s)</th><th>slowest (s)</th></tr>{% for p in r.time_to_removal %}
<tr><td>{{ p.peer }}</td><td>{{ p.removals }}</td><td>{{ "%.1f" | format(p.p50_s) }}</td>
<td>{{ "%.1f" | format(p.p90_s) }}</td><td>{{ "%.1f" | format(p.p99_s) }}</td>
<td>{{ "%.1f" | format(p.max_s) }}</td></tr>{% endfor %}</table>{% endif %}
</section>

<section id="disputes">
<h2>Disputes</h2>
<p>{{ r.disputes.total_disputed }} <em>disputed</em> and {{ r.disputes.total_not_ncii }}
<em>not NCII</em> verdicts in this period; {{ r.disputes.quarantined_items_now }} of this
node's items are quarantined now.</p>
{% if plots.disputes %}<figure>{{ plots.disputes | safe }}</figure>{% endif %}
{% if r.disputes.by_organisation %}<table><tr><th>Organisation</th><th>disputed</th>
<th>not NCII</th></tr>{% for d in r.disputes.by_organisation %}<tr><td>{{ d.name }}</td>
<td>{{ d.disputed }}</td><td>{{ d.not_ncii }}</td></tr>{% endfor %}</table>{% endif %}
</section>

<footer>Generated {{ r.generated_at }} by hashmesh. The same figures are in report.json.</footer>
</body>
</html>
"""
