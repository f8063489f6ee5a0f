"""The web platform's outbound side: the console's (a Redis stream per thread, which any worker writes to) under
the name `web`, so the browser page that follows a thread's stream sees posts, streamed edits and uploads as they
happen. Replies are drawn in a browser, which redraws cheaply: edits may come more often than a terminal's."""

from __future__ import annotations

from adapters.console.outbound import ConsoleOutbound

PLATFORM = "web"


class WebOutbound(ConsoleOutbound):
    name = PLATFORM
    min_edit_interval_s = 0.1
