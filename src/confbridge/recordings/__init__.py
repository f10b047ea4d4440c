"""Recordings of meetings: started and stopped through the worker holding the room, listed,
downloaded (issue 20)."""
