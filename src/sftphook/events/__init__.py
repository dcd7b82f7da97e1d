"""File events: the event model, its topics, and the recorder that commits them durably."""

from sftphook.events.model import EventRecord, Topic
from sftphook.events.recorder import EventListener, EventRecorder

__all__ = ["EventListener", "EventRecord", "EventRecorder", "Topic"]
