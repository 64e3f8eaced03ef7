"""Live views for Jupyter: a table and a chart that update in place while you keep working.

::

    from client_sdk.notebook import live_chart, live_table

    kpis = kpi_updates(client, department_id="customer_care")
    display(live_table(kpis, lambda m: {"health": m.payload.health_score}))
    display(live_chart(kpis, lambda m: m.payload.health_score, title="health"))

Displaying a view returns at once: it observes its hook (which subscribes
on the server) and redraws its output, found again by an IPython display
id, at most every ``interval`` seconds, on the kernel's event loop, until
:meth:`LiveView.stop` or the client closes. The table has one row per
``(department, queue)`` (the hook's :attr:`~client_sdk.hooks.MessageHook.by_queue`,
so a snapshot fills it at once); the chart draws the history of one value
per queue. They need the ``notebook`` extra (IPython, pandas, matplotlib).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
from collections import deque
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any, Generic, TypeVar

from reactivex import abc

from ._message_hook import MessageHook, QueueKey
from ._messages import Message
from .protocol import Payload

__all__ = ["LiveChart", "LiveTable", "LiveView", "live_chart", "live_table"]

P = TypeVar("P", bound=Payload)


def _queue_label(key: QueueKey) -> str:
    return "/".join(part for part in key if part) or "(organization)"


class LiveView(Generic[P]):
    """A notebook output fed by a hook; display it, and it keeps itself current.

    Attributes:
        hook: the hook it observes.
        interval: the least time between two redraws, in seconds.
        updates: redraws since it was displayed (the first drawing excluded).
    """

    def __init__(self, hook: MessageHook[P], *, interval: float = 0.5) -> None:
        self.hook = hook
        self.interval = interval
        self.updates = 0
        self._handle: Any = None
        self._dirty: asyncio.Event | None = None  # made on display, in the kernel's loop
        self._observer: abc.DisposableBase | None = None
        self._task: asyncio.Task[None] | None = None
        self._redrawn: asyncio.Event | None = None

    async def wait_redrawn(self, timeout: float | None = None) -> None:
        """Wait until the output has been redrawn at least once since it was displayed.

        Raises:
            TimeoutError: not within ``timeout`` seconds.
            RuntimeError: the view was never displayed.
        """
        if self._redrawn is None:
            raise RuntimeError("display the view first")
        async with asyncio.timeout(timeout):
            await self._redrawn.wait()

    # -- drawing (subclasses) ---------------------------------------------------

    def render(self) -> Any:
        """What the output shows now (an object IPython can display)."""
        raise NotImplementedError

    def _record(self, message: Message[P]) -> None:
        """Take in one message (subclasses keep history here)."""

    # -- the live part ------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether the view still updates."""
        return self._task is not None and not self._task.done()

    def _ipython_display_(self) -> None:
        from IPython.display import display as untyped_display

        display: Callable[..., Any] = untyped_display
        self.stop()
        loop = asyncio.get_running_loop()  # a kernel runs every cell inside its loop
        self._dirty = asyncio.Event()
        self._redrawn = asyncio.Event()
        self._handle = display(self.render(), display_id=True)
        self._observer = self.hook.subscribe(self._on_message, on_completed=self.stop)
        self._task = loop.create_task(self._redraw(), name="intraday-live-view")

    def _on_message(self, message: Message[P]) -> None:
        self._record(message)
        if self._dirty is not None:
            self._dirty.set()

    async def _redraw(self) -> None:
        assert self._dirty is not None
        while True:
            await self._dirty.wait()
            self._dirty.clear()
            self._handle.update(self.render())
            self.updates += 1
            if self._redrawn is not None:
                self._redrawn.set()
            await asyncio.sleep(self.interval)

    def stop(self) -> None:
        """Stop updating (the output keeps its last drawing) and release the hook."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.dispose()
        task, self._task = self._task, None
        if task is not None:
            task.cancel()


class LiveTable(LiveView[P]):
    """A pandas ``DataFrame``, one row per queue, from the hook's keyed view."""

    def __init__(
        self,
        hook: MessageHook[P],
        row: Callable[[Message[P]], Mapping[str, Any]],
        *,
        interval: float = 0.5,
    ) -> None:
        super().__init__(hook, interval=interval)
        self._row = row

    def frame(self) -> Any:
        """The table now, as a ``pandas.DataFrame`` (index: the queue)."""
        import pandas as pd

        rows = {
            _queue_label(key): {"updated": message.timestamp, **self._row(message)}
            for key, message in sorted(self.hook.by_queue.items(), key=lambda i: str(i[0]))
        }
        if not rows:
            return pd.DataFrame({"status": ["waiting for the first message..."]})
        return pd.DataFrame.from_dict(rows, orient="index")

    def render(self) -> Any:
        return self.frame()


class LiveChart(LiveView[P]):
    """A matplotlib line chart of one value per queue over time (the last ``window`` points).

    Both axes are labelled: the messages' time (UTC) along, ``y_label`` (or
    the title) up the side.
    """

    def __init__(
        self,
        hook: MessageHook[P],
        value: Callable[[Message[P]], float | None],
        *,
        title: str = "",
        y_label: str = "",
        window: int = 200,
        interval: float = 1.0,
    ) -> None:
        super().__init__(hook, interval=interval)
        self._value = value
        self.title = title
        self.y_label = y_label
        self._series: dict[str, deque[tuple[datetime, float]]] = {}
        self._window = window

    def _record(self, message: Message[P]) -> None:
        value = self._value(message)
        if value is None:
            return
        target = message.target
        label = _queue_label((target.department_id, target.queue_name))
        series = self._series.setdefault(label, deque(maxlen=self._window))
        series.append((message.timestamp, float(value)))

    def figure(self) -> Any:
        """The chart as a matplotlib ``Figure`` (what :meth:`render` draws as a PNG)."""
        from matplotlib.dates import DateFormatter as UntypedDateFormatter
        from matplotlib.figure import Figure

        date_formatter: Callable[[str], Any] = UntypedDateFormatter

        figure = Figure(figsize=(8, 3), layout="constrained")
        axes = figure.subplots()
        for label, points in sorted(self._series.items()):
            axes.plot([t for t, _ in points], [v for _, v in points], label=label)
        if self._series:
            axes.legend(loc="lower left", fontsize="small")
            axes.xaxis.set_major_formatter(date_formatter("%H:%M:%S"))
        else:
            axes.text(0.5, 0.5, "waiting for the first message...", ha="center")
        axes.set_title(self.title)
        axes.set_xlabel("time (UTC)")
        axes.set_ylabel(self.y_label or self.title)
        axes.grid(alpha=0.3)
        return figure

    def render(self) -> Any:
        from IPython.display import Image as UntypedImage

        image: Callable[..., Any] = UntypedImage
        figure = self.figure()
        png = io.BytesIO()
        with contextlib.suppress(ValueError):
            figure.savefig(png, format="png")
        return image(png.getvalue())


def live_table(
    hook: MessageHook[P],
    row: Callable[[Message[P]], Mapping[str, Any]],
    *,
    interval: float = 0.5,
) -> LiveTable[P]:
    """A live table of ``hook``: ``row(message)`` gives the columns of a queue's latest message."""
    return LiveTable(hook, row, interval=interval)


def live_chart(
    hook: MessageHook[P],
    value: Callable[[Message[P]], float | None],
    *,
    title: str = "",
    y_label: str = "",
    window: int = 200,
    interval: float = 1.0,
) -> LiveChart[P]:
    """A live chart of ``value(message)`` per queue over the last ``window`` messages.

    ``y_label`` names the value's axis (default: the title); time runs along.
    """
    return LiveChart(hook, value, title=title, y_label=y_label, window=window, interval=interval)
