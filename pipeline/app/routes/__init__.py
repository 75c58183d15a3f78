"""The endpoints of `mien serve`, one router per concern (FastAPI's "bigger applications"); ``server.create_app``
includes them, ``errors`` answers mien's exceptions for all of them, and ``deps`` hands them the server's state."""
