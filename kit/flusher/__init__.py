"""The flusher: delivers every outbox entry to eTrusted exactly once.

:class:`Flusher` runs the loop (:mod:`kit.flusher.core`); :meth:`Flusher.running` supervises
it inside an application. The modules, each with one job:

- :mod:`~kit.flusher.config`: :class:`FlusherConfig` (every field checked) and the counters;
- :mod:`~kit.flusher.decisions`: what each result means (pure functions);
- :mod:`~kit.flusher.catalog`: which event types eTrusted knows;
- :mod:`~kit.flusher.holds`: pauses of sending (fleet-wide 429 pacing, own credentials);
- :mod:`~kit.flusher.core`: feeder, workers and shutdown: the exactly-once protocol, with
  :mod:`~kit.flusher.writer` writing its results;
- :mod:`~kit.flusher.supervise`: the handle of :meth:`Flusher.running`.
"""

from kit.flusher.config import FlusherConfig, FlusherStats, InDoubtPolicy
from kit.flusher.core import Flusher
from kit.flusher.decisions import Label
from kit.flusher.delivery import Accepted, DeliveryClient
from kit.flusher.observer import FlusherObserver
from kit.flusher.supervise import RunningFlusher

__all__ = [
    "Accepted",
    "DeliveryClient",
    "Flusher",
    "FlusherConfig",
    "FlusherObserver",
    "FlusherStats",
    "InDoubtPolicy",
    "Label",
    "RunningFlusher",
]
