"""Cordée: workflow bot linking certifiers, training organisations and trainers."""

__version__ = "0.1.0"
