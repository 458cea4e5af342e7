"""The earnings chart: a PNG made with matplotlib's Agg canvas, sized for a phone.

Only the object API is used (no pyplot, no global state), so rendering is safe in a worker
thread; callers run it with ``asyncio.to_thread`` because it takes a fraction of a second
of CPU (the thread inherits the update's locale, so labels and dates read in the user's
language). Amounts become floats only here, to place bars on an axis.
"""

from __future__ import annotations

import io
from datetime import date

from babel.dates import format_date

from bot.chat import texts
from bot.chat.i18n import i18n

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
    axes.bar(positions, confirmed, width=0.85, color="#2e7d32", label=str(texts.CHART_CONFIRMED))
    axes.bar(
        positions,
        pending,
        width=0.85,
        bottom=confirmed,
        color="#f9a825",
        label=str(texts.CHART_PENDING),
    )
    axes.set_title(texts.CHART_TITLE.format(days=len(days), currency=currency), fontsize=15)
    axes.tick_params(axis="both", labelsize=12)
    # About six date labels, the last one on today.
    step = max(len(days) // 6, 1)
    ticks = positions[::-1][::step][::-1]
    locale = i18n.current_locale
    axes.set_xticks(ticks, [format_date(days[i], "dd MMM", locale=locale) for i in ticks])
    axes.set_ylim(
        bottom=0, top=max([c + p for c, p in zip(confirmed, pending, strict=True)] + [1]) * 1.1
    )
    axes.grid(axis="y", alpha=0.3)
    axes.spines[["top", "right"]].set_visible(False)
    axes.legend(fontsize=12, loc="upper left", ncols=2, frameon=False)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
