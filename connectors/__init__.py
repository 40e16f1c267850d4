"""The storage backends: one module, or one folder, per backend (``networkx_graph``, ``neo4j/``, ``qdrant_edge``...).

``connectors/`` sits at the top of the repository by the project's layout, but installs only as
``kgbuild.connectors`` (``[tool.setuptools.package-dir]`` in pyproject.toml): import it by that
name; no top-level ``connectors`` module exists. Each backend implements a sink Protocol of
``kgbuild.sinks``, imports its client library lazily, is registered by name in
``kgbuild/registry.py``, and is held to the shared suites in ``tests/conformance/``.
"""
