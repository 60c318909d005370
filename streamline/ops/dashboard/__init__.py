"""`streamline dashboard`: the deployed CloudWatch dashboard as a local web page.

The page draws the dashboard's own DashboardBody, read with GetDashboard and used unchanged:
every widget at its place on CloudWatch's 24-column grid, graphs and single values from
GetMetricData with each metric's period and statistic, alarm status from DescribeAlarms, text
widgets' markdown. It refreshes itself (every 10 s by default), so it follows a pipeline while it
runs. The same code reads the local cloud or an AWS account (the target flags every ops command
takes). The page and Chart.js (from ``node_modules``, installed by ``make setup``) are served by
this process: nothing is fetched from the internet.

The modules, in the order the data flows:

* ``body``: the DashboardBody parsed (widgets, metric arrays and the console's shorthand) and
  the GetMetricData queries built from it; pure, no AWS;
* ``source``: :class:`DashboardSource` reads the body, metric data and alarm states from a
  target, as JSON-ready data;
* ``server``: :func:`make_server` serves the page (``page/``), Chart.js and that data;
* ``command``: the ``streamline dashboard`` subcommand (:func:`register`, :func:`run`).

Example::

    streamline dashboard                          # the stage's dashboard on http://127.0.0.1:8501/
    streamline dashboard --since 1h --port 0 --open
    streamline dashboard --dashboard my-app --profile prod --region eu-west-1
"""

from __future__ import annotations

from streamline.ops.dashboard.body import Dashboard, DashboardError, parse_body
from streamline.ops.dashboard.command import register, run
from streamline.ops.dashboard.server import DashboardServer, make_server
from streamline.ops.dashboard.source import DashboardSource

__all__ = [
    "Dashboard",
    "DashboardError",
    "DashboardServer",
    "DashboardSource",
    "make_server",
    "parse_body",
    "register",
    "run",
]
