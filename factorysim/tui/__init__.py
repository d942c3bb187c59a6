"""The Textual sandbox: the only package that imports textual."""

from .app import FactorySimApp

__all__ = ["FactorySimApp"]
