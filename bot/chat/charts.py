"""The earnings chart: a PNG made with matplotlib's Agg canvas, sized for a phone.

Only the object API is used (no pyplot, no global state), so rendering is safe in a worker
thread; callers run it with ``asyncio.to_thread`` because it takes a fraction of a second
of CPU. Amounts become floats only here, to place bars on an axis.
"""

from __future__ import annotations

import io
from datetime import date

from bot.chat import texts

# 1200 x 800 px: Telegram keeps this size, and text stays legible on a phone screen.
WIDTH_IN, HEIGHT_IN, DPI = 8.0, 5.34, 150


def render_earnings_png(
    days: list[date],
    pending_minor: list[int],
    confirmed_minor: list[int],
    *,
    currency: str,
    minor_digits: int,
) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scale = 10**minor_digits
    confirmed = [amount / scale for amount in confirmed_minor]
    pending = [amount / scale for amount in pending_minor]

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    positions = list(range(len(days)))
    axes.bar(positions, confirmed, width=0.85, color="#2e7d32", label=texts.CHART_CONFIRMED)
    axes.bar(
        positions, pending, width=0.85, bottom=confirmed, color="#f9a825", label=texts.CHART_PENDING
    )
    axes.set_title(texts.CHART_TITLE.format(days=len(days), currency=currency), fontsize=15)
    axes.tick_params(axis="both", labelsize=12)
    # About six date labels, the last one on today.
    step = max(len(days) // 6, 1)
    ticks = positions[::-1][::step][::-1]
    axes.set_xticks(ticks, [days[i].strftime("%d %b") for i in ticks])
    axes.set_ylim(
        bottom=0, top=max([c + p for c, p in zip(confirmed, pending, strict=True)] + [1]) * 1.1
    )
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=12, loc="upper left", ncols=2, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
