"""Load: many emulated masters against one endpoint, measured."""
