"""Bundled extraction schemas (YAML), installed as kgbuild.schemas."""
