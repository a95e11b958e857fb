"""Test support: tiny, randomly initialised model folders in the real file layout.

The same loaders that read the released 8 GB download read these few-MB folders, so tests and
example workflows exercise the real loading code end to end. Random weights make noise, not
speech; what the tests check is shapes, lengths, determinism and the plumbing. Nothing in the
product imports this package.

    python -m stepaudio_core.testing tiny-bundle OUT_DIR [--awq]
"""
