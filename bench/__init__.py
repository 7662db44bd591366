"""tickwire benchmarks (``python -m bench``). Benchmarks print numbers; they are not tests.

Keep this package import-light: ``bench.clients`` and ``bench.runner`` are also imported by the
separate peers interpreter (``bench/.venv-peers``), which has neither picows nor msgspec.
"""
