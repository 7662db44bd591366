"""The I/O layer: connections, heartbeats, pacing, reconnects, the Feed."""

from tickwire.net.feed import Feed, FeedError, FeedOptions, stream

__all__ = ["Feed", "FeedError", "FeedOptions", "stream"]
