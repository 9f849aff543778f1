"""Shared pieces of the SQL home and store: URLs and connections, type mapping, bulk loaders.

Imported only when a `type: sql` connector is used, so `import hygge` never loads a driver.
"""
