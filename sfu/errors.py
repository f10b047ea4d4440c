"""Refusals the worker's HTTP face turns into a status and a one-line reason."""

from __future__ import annotations


class SfuError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
