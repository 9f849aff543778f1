"""Entities: one flow definition covering many tables or folders, each run as its own flow.

`expand` (hygge/entities/expand.py) turns a definition into raw flows `<flow>.<entity>`
before validation; `discover` finds tables and folders; `names` keeps entity names safe as
flow names, paths and identifiers; `manifest` remembers each definition's entities at its
store, so an entity that disappeared is reported by the next run. See docs/entities.md.
"""

from hygge.entities.expand import Entity, EntitySet, depends_on, expand, is_definition

__all__ = ["Entity", "EntitySet", "depends_on", "expand", "is_definition"]
