"""What the pipeline's measured work would cost on AWS, per million events.

``prices`` is the one reviewed price table; ``model`` is what was measured and how the same
work scales (pure); ``pricing`` prices a measurement (:func:`estimate`, pure); ``render``
writes the resulting report as text or JSON; ``report_lines`` reads Lambda REPORT lines;
``measure`` gathers a window's measurements; ``cli`` is ``streamline cost``.

Example::

    from streamline.cost import PRICES, estimate, measure, render_text
    report = estimate(measure(target, since=start, events=1000), PRICES)
    print(render_text(report))
"""

from __future__ import annotations

from streamline.cost.measure import CostError, measure
from streamline.cost.model import CostReport, FunctionUsage, LineItem, Measurement
from streamline.cost.prices import PRICES, Price, PriceTable
from streamline.cost.pricing import estimate
from streamline.cost.render import render_json, render_text
from streamline.cost.report_lines import Report, collect_reports

__all__ = [
    "PRICES",
    "CostError",
    "CostReport",
    "FunctionUsage",
    "LineItem",
    "Measurement",
    "Price",
    "PriceTable",
    "Report",
    "collect_reports",
    "estimate",
    "measure",
    "render_json",
    "render_text",
]
