"""The transparency report: aggregates of one period, as JSON and one self-contained page.

``figures`` reads the store (audit rows, the logs, feedback, receipts) and counts; ``page``
draws the counts with matplotlib as inline SVG and writes the HTML. Only aggregates leave
here: counts per week, per organisation (named by ``peers.toml``) and per peer, and
percentiles; never a hash, record id, case reference or query.

It sits at the service's level: it reads the store and config, and applies matching's
dispute rules (``matching.verdicts``) to count quarantined items.
"""
